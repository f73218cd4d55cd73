"""HTTP and WebSocket on one port, with the websockets library's asyncio server.

Every connection starts as plain HTTP/1.1 (h11: keep-alive, request bodies, every verb), which the
websockets parser alone cannot carry: it takes GET without a body and closes the connection after
one answer. A first request that asks for a WebSocket is handed, bytes and all, to the websockets
connection the HTTP side extends (`_Connection`), and goes through its handshake, `process_request`
and the path's session handler as before. The server runs its own event loop on its own thread, so
it never waits on the engine; calls that may block (the REST gateway) run on a pool.
"""

import asyncio
import functools
import http
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import h11
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

log = logging.getLogger("tradsys.http")

Route = Callable[[Request], tuple[int, str, bytes]]
"""A GET handler: the request in; status, content type and body out. Runs on the event loop: keep it quick."""
Mount = Callable[[str, str, str | None, bytes], Awaitable[tuple[int, str, bytes]]]
"""A handler of every path under a prefix and every verb: verb, target, the Authorization header and the
body in; status, content type and body out. Awaited on the loop: anything slow goes to a pool."""
Session = Callable[[ServerConnection], Awaitable[None]]
MAX_HEAD = 16 * 1024
"""Bytes of a request line and headers; a larger head is refused (431)."""
DRAIN_SECONDS = 2.0
"""How long the rest of a refused request is read and dropped before the connection closes."""
CORS = [("Access-Control-Allow-Origin", "*")]
"""Browsers on other origins read these (the PeerJS client fetches /KEY/id); credentials are never
ambient (no cookies), so a page reads only what the token it holds allows."""
PREFLIGHT = [("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE"),
             ("Access-Control-Allow-Headers", "Authorization, Content-Type"), ("Access-Control-Max-Age", "600")]


def response(status: int, content_type: str, body: bytes) -> Response:
    headers = Headers([
        ("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"), *CORS,
    ])
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def _text(status: int, text: str) -> tuple[int, str, bytes]:
    return status, "text/plain; charset=utf-8", text.encode()


BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nServer: tradsys\r\n\r\n%s")


class HttpServer:
    def __init__(self, host: str, port: int, max_message_bytes: int, ssl: Any = None, max_connections: int = 2000,
                 idle_seconds: float = 60.0, on_refused: Callable[[], None] = lambda: None) -> None:
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        """Also the bound of a request body: the same bound as one gRPC or WebSocket message."""
        self.max_connections = max_connections
        """Connections open at once, of every kind; the next is answered 503 and closed."""
        self.idle_seconds = idle_seconds
        """A plain HTTP connection with no request under way is closed after this long: an idle keep-alive
        or a client that never finishes its head holds nothing for ever."""
        self.on_refused = on_refused
        self.open = 0
        """Connections open now, refused ones still draining included; changed on the loop only."""
        self.ssl = ssl
        self.routes: dict[str, Route] = {}
        self.patterns: list[tuple[re.Pattern[str], Route]] = []
        """Routes for paths with a variable part (the PeerJS key), tried in order after `routes`."""
        self.mounts: dict[str, Mount] = {}
        """Handlers of every path under a prefix (`/api/v1/`), after `routes` and `patterns`."""
        self.sessions: dict[str, Session] = {}
        self.uncompressed: set[str] = set()
        """Session paths served without permessage-deflate: a client's compressed frames would make the
        daemon hold far more than it received (a read of 256 KiB can inflate to thousands of messages)."""
        self.loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._plain: set[_Http1] = set()
        """Connections still speaking plain HTTP, closed on stop (the websockets server closes the others)."""
        self._thread = threading.Thread(target=self.loop.run_forever, name="tradsys-http", daemon=True)

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        """`process_request` of a WebSocket handshake: a session path goes on to its handler."""
        path = request.path.split("?", 1)[0]
        if path in self.sessions:
            if path in self.uncompressed:
                connection.protocol.available_extensions = None
            return None
        return response(*self._get(request))

    def _get(self, request: Request) -> tuple[int, str, bytes]:
        path = request.path.split("?", 1)[0]
        name, route = self._resolve(path)
        if route is None:
            if path in self.sessions:
                return _text(426, "this path speaks WebSocket: send an Upgrade\n")
            return _text(404, f"no such path: {path}\n")
        try:
            return route(request)
        except Exception:
            log.exception("http.route_failed", extra={"fields": {"route": name}})
            return _text(500, "internal error\n")

    def _resolve(self, path: str) -> tuple[str, Route | None]:
        """The route for `path` and a name for it that is safe to log (a pattern's path may hold a token)."""
        route = self.routes.get(path)
        if route is not None:
            return path, route
        for pattern, route in self.patterns:
            if pattern.fullmatch(path):
                return pattern.pattern, route
        return path, None

    def _mount(self, path: str) -> Mount | None:
        for prefix, mount in self.mounts.items():
            if path.startswith(prefix):
                return mount
        return None

    async def answer(self, method: str, target: str, headers: Headers, body: bytes) -> tuple[int, str, bytes, list]:
        """A plain HTTP request's answer: status, content type, body and extra headers."""
        path = target.split("?", 1)[0]
        mount = None if path in self.routes else self._mount(path)
        if method == "OPTIONS":
            return 204, "text/plain", b"", PREFLIGHT
        if mount is not None:
            return (*await mount(method, target, headers.get("Authorization"), body), [])
        if method not in ("GET", "HEAD"):
            return (*_text(405, f"{path} takes GET\n"), [("Allow", "GET")])
        return (*self._get(Request(target, headers)), [])

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
            create_connection=functools.partial(_Connection, self),  # type: ignore[arg-type]
        )
        self.port = self._server.sockets[0].getsockname()[1] if self.port == 0 else self.port

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Thread-safe: run `fn(*args)` on the server's loop."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        if self._server is not None:
            async def close() -> None:
                self._server.close()
                for plain in list(self._plain):
                    plain.transport.close()
                await self._server.wait_closed()

            try:
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=5)
            except Exception:
                log.warning("http.close_timeout")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class _Connection(ServerConnection):
    """A websockets connection that first speaks plain HTTP: it becomes a WebSocket only when the
    connection's first request asks to, and is never one otherwise."""

    def __init__(self, owner: HttpServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.plain: _Http1 | None = None
        self.busy: _Busy | None = None
        """Set on a connection past `max_connections`: its request head is answered 503, the rest dropped."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        owner = self.owner
        owner.open += 1
        if owner.open > owner.max_connections:
            self.busy = _Busy(owner, transport)  # type: ignore[arg-type]
            return
        self.plain = _Http1(owner, transport, self._upgrade)  # type: ignore[arg-type]

    def _upgrade(self, received: bytes) -> None:
        transport, self.plain = self.plain.transport, None
        super().connection_made(transport)
        super().data_received(received)

    def data_received(self, data: bytes) -> None:
        if self.plain is not None:
            self.plain.data_received(data)
        elif self.busy is not None:
            self.busy.data_received(data)
        else:
            super().data_received(data)

    def eof_received(self) -> None:
        if self.plain is not None:
            self.plain.transport.close()
        elif self.busy is not None:
            self.busy.transport.close()
        else:
            super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.open -= 1
        if self.plain is not None:
            self.plain.connection_lost()
        elif self.busy is not None:
            self.busy.connection_lost()
        else:
            super().connection_lost(exc)

    def pause_writing(self) -> None:
        if self.plain is None and self.busy is None:
            super().pause_writing()

    def resume_writing(self) -> None:
        if self.plain is None and self.busy is None:
            super().resume_writing()


class _Busy:
    """A connection past `max_connections`: its request head is read (so that the client, which writes
    first, sees the answer as the answer to it), answered 503, and what follows dropped until the client
    closes or `DRAIN_SECONDS` pass since it connected (closing on unread bytes would reset the connection
    and lose the answer). When as many are open past the limit as the limit itself, the next is closed
    without an answer."""

    def __init__(self, owner: HttpServer, transport: asyncio.Transport) -> None:
        owner.on_refused()
        self.owner = owner
        self.transport = transport
        self.head: bytearray | None = bytearray()
        """Bytes until the end of the request head, then None once answered."""
        self.timer: asyncio.TimerHandle | None = None
        if owner.open > 2 * owner.max_connections:
            transport.abort()
            return
        self.timer = owner.loop.call_later(DRAIN_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.head is None:
            return
        self.head += data
        if b"\r\n\r\n" in self.head or len(self.head) > MAX_HEAD:
            self.head = None
            message = f"{self.owner.max_connections} connections are open, the daemon's limit ([http] max_connections)\n"
            self.transport.write(BUSY % (len(message), message.encode()))
            if self.transport.can_write_eof():
                self.transport.write_eof()

    def connection_lost(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


class _Http1:
    """One connection's HTTP/1.1 requests, answered in order; reading pauses while one is under way,
    so a pipelining client is held back rather than buffered."""

    def __init__(self, owner: HttpServer, transport: asyncio.Transport, upgrade: Callable[[bytes], None]) -> None:
        self.owner = owner
        self.transport = transport
        self.upgrade = upgrade
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.received: bytearray | None = bytearray()
        """Every byte until the first request's head is parsed: a WebSocket handshake is replayed from it."""
        self.request: h11.Request | None = None
        self.headers = Headers()
        self.body = bytearray()
        self.busy = False
        self.discarding = False
        self.idle: asyncio.TimerHandle | None = None
        owner._plain.add(self)
        self._idle()

    def _idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = self.owner.loop.call_later(self.owner.idle_seconds, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            return
        if self.received is not None:
            self.received += data
        self.h11.receive_data(data)
        self._next()

    def connection_lost(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.owner._plain.discard(self)

    def _next(self) -> None:
        while not self.busy:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                if self._start(event):
                    return
            elif isinstance(event, h11.Data):
                self.body += event.data
                if len(self.body) > self.owner.max_message_bytes:
                    self._refuse(413, f"the body is over {self.owner.max_message_bytes} bytes")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self.busy = True
                self.transport.pause_reading()
                self.owner.loop.create_task(self._answer(self.request, bytes(self.body)))
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return

    def _start(self, request: h11.Request) -> bool:
        """Begin `request`; True if the connection is no longer this object's to read."""
        received, self.received = self.received, None
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers])
        if received is not None and headers.get("Upgrade", "").lower() == "websocket":
            if self.idle is not None:
                self.idle.cancel()
            self.owner._plain.discard(self)
            self.upgrade(bytes(received))
            return True
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.owner.max_message_bytes:
            self._refuse(413, f"the body is over {self.owner.max_message_bytes} bytes")
            return True
        self.request, self.headers = request, headers
        self.body.clear()
        if self.idle is not None:
            self.idle.cancel()
        return False

    async def _answer(self, request: h11.Request, body: bytes) -> None:
        method, target = request.method.decode("latin-1"), request.target.decode("latin-1")
        try:
            status, content_type, payload, extra = await self.owner.answer(method, target, self.headers, body)
        except Exception:
            log.exception("http.answer_failed", extra={"fields": {"method": method}})
            status, content_type, payload, extra = (*_text(500, "internal error\n"), [])
        if self.transport.is_closing():
            return
        self._send(status, content_type, b"" if method == "HEAD" else payload, extra, len(payload))
        if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
            self.transport.close()
            return
        try:
            self.h11.start_next_cycle()
        except h11.LocalProtocolError:  # the client had not finished sending: nothing more to read
            self.transport.close()
            return
        self.busy = False
        self.transport.resume_reading()
        self._idle()
        self._next()

    def _send(self, status: int, content_type: str, payload: bytes, extra: list, length: int) -> None:
        headers = [("Content-Type", content_type), ("Content-Length", str(length)), ("Cache-Control", "no-store"),
                   ("Server", "tradsys"), *CORS, *extra]
        try:
            self.transport.write(self.h11.send(h11.Response(status_code=status, headers=headers,
                                                            reason=http.HTTPStatus(status).phrase)))
            if payload:
                self.transport.write(self.h11.send(h11.Data(data=payload)))
            self.transport.write(self.h11.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request that cannot be read (or is too big to) and end the connection. What the
        client still sends is read and dropped for a while: closing with unread bytes would reset the
        connection, and the client would lose the answer."""
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = f"{message}\n".encode()
            self._send(status, "text/plain; charset=utf-8", body, [("Connection", "close")], len(body))
        self.discarding = True
        self.busy = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.idle is not None:
            self.idle.cancel()
        self.idle = self.owner.loop.call_later(DRAIN_SECONDS, self.transport.close)
