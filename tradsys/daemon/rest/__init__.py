"""REST on the HTTP port: `/api/v1/...` for every unary gRPC method (`routes`), answered by the same
servicers (`gateway`), described by a generated OpenAPI document (`openapi`) and Swagger UI (`swagger`)."""

import orjson

from tradsys.daemon.http import HttpServer
from tradsys.daemon.rest.gateway import Gateway
from tradsys.daemon.rest.openapi import document
from tradsys.daemon.rest.routes import PREFIX, ROUTES, Route
from tradsys.daemon.rest.swagger import routes as swagger_routes

__all__ = ["Gateway", "PREFIX", "ROUTES", "Route", "document", "mount"]


def mount(http: HttpServer, gateway: Gateway, version: str = "1") -> Gateway:
    """Serve the API, its document and its UI on `http`; the caller closes the gateway after the server."""
    spec = orjson.dumps(document(version))
    http.mounts[PREFIX + "/"] = gateway.handle
    http.routes["/api/openapi.json"] = lambda _request: (200, "application/json", spec)
    http.routes.update(swagger_routes())
    return gateway
