"""HTTP and WebSocket on one port, with the websockets library's asyncio server.

Plain GETs (`/health`, `/metrics`, ...) are answered from `process_request` during what would
otherwise be a WebSocket handshake; WebSocket paths are dispatched to their session handler.
The server runs its own event loop on its own thread, so it never waits on the engine.
"""

import asyncio
import http
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

log = logging.getLogger("tradsys.http")

Route = Callable[[Request], tuple[int, str, bytes]]
"""A GET handler: the request in; status, content type and body out. Runs on the event loop: keep it quick."""
Session = Callable[[ServerConnection], Awaitable[None]]


def response(status: int, content_type: str, body: bytes) -> Response:
    headers = Headers([
        ("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
        # browsers on other origins read these (the PeerJS client fetches /KEY/id); credentials are never
        # ambient (no cookies), so a page reads only what the token it holds allows
        ("Access-Control-Allow-Origin", "*"),
    ])
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


class HttpServer:
    def __init__(self, host: str, port: int, max_message_bytes: int, ssl: Any = None) -> None:
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.ssl = ssl
        self.routes: dict[str, Route] = {}
        self.patterns: list[tuple[re.Pattern[str], Route]] = []
        """Routes for paths with a variable part (the PeerJS key), tried in order after `routes`."""
        self.sessions: dict[str, Session] = {}
        self.uncompressed: set[str] = set()
        """Session paths served without permessage-deflate: a client's compressed frames would make the
        daemon hold far more than it received (a read of 256 KiB can inflate to thousands of messages)."""
        self.loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="tradsys-http", daemon=True)

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path in self.sessions and request.headers.get("Upgrade", "").lower() == "websocket":
            if path in self.uncompressed:
                connection.protocol.available_extensions = None
            return None
        name, route = self._resolve(path)
        if route is None:
            if path in self.sessions:
                return response(426, "text/plain; charset=utf-8", b"this path speaks WebSocket: send an Upgrade\n")
            return response(404, "text/plain; charset=utf-8", f"no such path: {path}\n".encode())
        try:
            status, content_type, body = route(request)
        except Exception:
            log.exception("http.route_failed", extra={"fields": {"route": name}})
            return response(500, "text/plain; charset=utf-8", b"internal error\n")
        return response(status, content_type, body)

    def _resolve(self, path: str) -> tuple[str, Route | None]:
        """The route for `path` and a name for it that is safe to log (a pattern's path may hold a token)."""
        route = self.routes.get(path)
        if route is not None:
            return path, route
        for pattern, route in self.patterns:
            if pattern.fullmatch(path):
                return pattern.pattern, route
        return path, None

    async def _session(self, connection: ServerConnection) -> None:
        path = connection.request.path.split("?", 1)[0] if connection.request else ""
        handler = self.sessions.get(path)
        if handler is not None:
            await handler(connection)

    def start(self) -> None:
        """Bind and serve; raises OSError (e.g. port in use) here, not later on the loop."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        future.result(timeout=10)

    async def _start(self) -> None:
        self._server = await serve(
            self._session, self.host, self.port, process_request=self._route, max_size=self.max_message_bytes,
            ssl=self.ssl, compression="deflate", server_header="tradsys",
        )
        self.port = self._server.sockets[0].getsockname()[1] if self.port == 0 else self.port

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Thread-safe: run `fn(*args)` on the server's loop."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        if self._server is not None:
            async def close() -> None:
                self._server.close()
                await self._server.wait_closed()

            try:
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=5)
            except Exception:
                log.warning("http.close_timeout")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
