"""The OpenAPI document is valid OpenAPI 3.1, lists every route, and is what the daemon serves."""

import asyncio
import threading
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.rest.conftest import Rest
from tests.rest.test_routes import ORDER
from tradsys.daemon.rest import ROUTES, Gateway, document


def test_the_document_validates_and_lists_every_route() -> None:
    spec = document()
    validate(spec)
    listed = {(verb.upper(), path) for path, item in spec["paths"].items() for verb in item}
    assert listed == {(r.verb, r.template) for r in ROUTES}
    assert spec["components"]["securitySchemes"]["bearer"] == {
        **spec["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    book = spec["paths"]["/api/v1/books/{symbol}"]["get"]
    assert [p["name"] for p in book["parameters"]] == ["symbol", "depth"]
    assert book["parameters"][0]["example"] == "BTC-USD"
    place = spec["paths"]["/api/v1/orders"]["post"]["requestBody"]["content"]["application/json"]
    assert place["example"]["symbol"] == "BTC-USD"
    order = spec["components"]["schemas"]["tradsys.v1.Order"]["properties"]
    assert order["side"]["enum"] == ["SIDE_UNSPECIFIED", "SIDE_BUY", "SIDE_SELL"]
    assert order["created_ns"]["type"] == "string"
    assert "StreamBook" in spec["info"]["description"]


def test_the_daemon_serves_the_document_and_the_ui(rest: Rest) -> None:
    status, served = rest.call("GET", "/api/openapi.json", token=None)
    assert status == 200 and served == document()
    status, page = rest.call("GET", "/swagger/index.html", token=None)
    assert status == 200 and b"swagger-ui-bundle.js" in page and b"/api/openapi.json" in page
    status, bundle = rest.call("GET", "/swagger/swagger-ui-bundle.js", token=None)
    assert status == 200 and len(bundle) > 100_000


class _Blocking:
    """Servicers whose every method waits for `release`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def __getattr__(self, _name: str) -> Any:
        def call(request: Any, context: Any) -> Any:
            self.entered.release()
            self.release.wait(10)
            return request
        return call


def test_calls_past_the_bound_are_refused_not_queued() -> None:
    servicer = _Blocking()
    gateway = Gateway({key: servicer for key in {r.service for r in ROUTES}}, workers=2, max_inflight=2)

    async def main() -> list[int]:
        calls = [asyncio.create_task(gateway.handle("GET", "/api/v1/instruments", None, b"")) for _ in range(2)]
        await asyncio.sleep(0)
        status, _type, body = await gateway.handle("GET", "/api/v1/instruments", None, b"")
        assert b"RESOURCE_EXHAUSTED" in body
        servicer.release.set()
        return [status] + [(await c)[0] for c in calls]

    try:
        assert asyncio.run(main()) == [429, 200, 200]
    finally:
        gateway.close()


@pytest.mark.parametrize("verb", ["GET", "POST"])
def test_many_requests_share_one_connection(rest: Rest, verb: str) -> None:
    for _ in range(20):
        status, _answer = rest.call(verb, "/api/v1/instruments" if verb == "GET" else "/api/v1/orders:validate",
                                    ORDER if verb == "POST" else None)
        assert status == 200
    assert rest.connection.sock is not None
