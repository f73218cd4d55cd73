"""The peer's side of the PeerJS server protocol: one WebSocket to the daemon's `/peerjs`.

The daemon wants a TradSys token as the PeerJS `key` (see tradsys/daemon/peerjs.py); `token` is
our own random string that ties the id to us, so a reconnect with the same pair re-attaches. We
heartbeat every `heartbeat` seconds (the server drops a peer silent past its `alive_timeout`), and
after a lost connection reconnect with backoff, holding at most `MAX_PENDING` outgoing messages.
`ERROR` and `ID-TAKEN` are final: the server refused us, trying again would not help.
"""

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("tradsys.p2p")

MAX_PENDING: Final = 1000
"""Messages held while reconnecting; past it the oldest is dropped (and counted)."""
MAX_BACKOFF: Final = 5.0
CLIENT_VERSION: Final = "1.5.5"
"""The JS client version we speak like; the daemon ignores it, other servers may log it."""


class SignalingError(Exception):
    """The server refused this peer: `kind` is "server-error" (bad key, limit) or "unavailable-id"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Signaling:
    """Keeps one registration with the server alive; `handler` gets every server message but OPEN."""

    def __init__(self, url: str, key: str, peer_id: str, handler: Handler, heartbeat: float = 5.0) -> None:
        self.url = url
        self.key = key
        self.id = peer_id
        self.token = secrets.token_hex(8)
        self.handler = handler
        self.heartbeat = heartbeat
        self.opened = asyncio.Event()
        self.failure: SignalingError | None = None
        self.reconnects = 0
        self.dropped = 0
        self._pending: deque[str] = deque()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def ws_url(self) -> str:
        query = urlencode({"key": self.key, "id": self.id, "token": self.token, "version": CLIENT_VERSION})
        return f"{self.url.rstrip('/')}?{query}"

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and wait for OPEN; raises SignalingError if refused, TimeoutError if the server is silent."""
        self._task = asyncio.create_task(self._run())
        done = asyncio.ensure_future(self.opened.wait())
        await asyncio.wait({done, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        if self.failure is not None:
            raise self.failure
        if not self.opened.is_set():
            await self.close()
            raise TimeoutError(f"no OPEN from {self.url} within {timeout}s")

    def send(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, separators=(",", ":"))
        ws = self._ws
        if ws is not None and self.opened.is_set():
            asyncio.ensure_future(self._send(ws, text))
        else:
            self._hold(text)

    def _hold(self, text: str) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(text)

    async def _send(self, ws: ClientConnection, text: str) -> None:
        try:
            await ws.send(text)
        except ConnectionClosed:
            self._hold(text)

    async def close(self) -> None:
        """Leave: the server forgets us when the socket closes."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        backoff = 0.1
        while not self._closing:
            try:
                async with connect(self.ws_url(), compression=None, open_timeout=10) as ws:
                    self._ws = ws
                    backoff = 0.1
                    await self._session(ws)
            except (OSError, ConnectionClosed, TimeoutError) as exc:
                log.info("p2p.signaling_lost id=%s error=%r", self.id, exc)
            finally:
                self._ws = None
                self.opened.clear()
            if self.failure is not None or self._closing:
                return
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)

    async def _session(self, ws: ClientConnection) -> None:
        beat = asyncio.create_task(self._beat(ws))
        try:
            async for frame in ws:
                message = _json_object(frame)
                if message is None:
                    continue
                kind = message.get("type")
                if kind == "OPEN":
                    self.opened.set()
                    while self._pending:
                        await ws.send(self._pending.popleft())
                elif kind in ("ERROR", "ID-TAKEN", "INVALID-KEY"):
                    payload = message.get("payload")
                    text = payload.get("msg", "") if isinstance(payload, dict) else ""
                    self.failure = SignalingError("unavailable-id" if kind == "ID-TAKEN" else "server-error",
                                                  text or f"ID {self.id!r} is taken")
                    await self.handler(message)
                    return
                else:
                    await self.handler(message)
        finally:
            beat.cancel()

    async def _beat(self, ws: ClientConnection) -> None:
        try:
            while True:
                await asyncio.sleep(self.heartbeat)
                await ws.send('{"type":"HEARTBEAT"}')
        except ConnectionClosed:
            return


def _json_object(frame: str | bytes) -> dict[str, Any] | None:
    """A server message, or None for anything that is not a JSON object (ignored, as the JS client does)."""
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None
