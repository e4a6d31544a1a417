"""One WebSocket to Letta Code's App Server: commands matched to replies by ``request_id``, turn
events handed to whoever listens on their conversation.

One ``AppSocket`` per server process. It connects on the first command (start-up costs nothing),
reads ``app_server_info`` first (``protocol_version`` must be ``PROTOCOL_VERSION``), and, after the
socket drops, connects again on the next command with backoff (``BACKOFF``). A command that gets
no reply (the App Server does not answer unknown commands) fails after ``timeout`` seconds. Every
failure is one of the typed failures of ``errors.py``; the token never appears in one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from ..errors import LettaRequestError, Rejected, StreamBroken, Target, Unreachable, safe_url
from .base import Frame

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

log = logging.getLogger(__name__)

#: The App Server protocol this backend speaks (``app_server_info.protocol_version``).
PROTOCOL_VERSION = 1
#: Seconds to wait before each further connection attempt.
BACKOFF = (0.2, 0.5, 1.0, 2.0)
#: The reply types that are not named ``<command>_response``.
REPLY_TYPES = {"input": "input_accepted"}

#: A conversation's frames are addressed by its runtime: (agent id, conversation id).
Runtime = tuple[str, str]
#: What a listener receives: a frame, or None when the socket dropped (its turn's frames are lost).
Inbox = asyncio.Queue[Frame | None]


class AppSocket:
    """The process's one connection to the App Server at ``url`` (``token``: its bearer token)."""

    def __init__(self, url: str, *, token: str | None, timeout: float) -> None:
        self.url = url
        self.where = safe_url(url)
        self.timeout = timeout
        self._token = token
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._pending: dict[str, asyncio.Future[Frame]] = {}
        self._chunked: dict[str, Inbox] = {}  # commands answered in several replies (``request_chunks``)
        self._listeners: dict[Runtime, set[Inbox]] = {}
        self._ids = itertools.count(1)
        #: The ``app_server_info`` reply of the current connection.
        self.info: Frame = {}
        #: Counts connections: what the App Server holds for a socket (a turn, its questions) ends with it.
        self.generation = 0

    # -- connecting ----------------------------------------------------------------------------
    async def _connected(self, target: Target) -> ClientConnection:
        """The open connection, made (with backoff) if there is none."""
        if self._ws is not None:
            return self._ws
        async with self._connecting:
            if self._ws is not None:
                return self._ws
            ws = await self._open(target)
            self._ws = ws
            self.generation += 1
            self._reader = asyncio.create_task(self._read(ws))
            try:
                self.info = await self._exchange(ws, {"type": "app_server_info"}, target)
            except SocketGone:
                raise self._broken(target, False) from None
            except BaseException:
                await ws.close()
                raise
            version = self.info.get("protocol_version")
            if version != PROTOCOL_VERSION:
                await ws.close()
                raise Rejected(
                    f"Letta Code's App Server at {self.where} speaks protocol version {version}, and this "
                    f"server speaks version {PROTOCOL_VERSION}: run a Letta Code release that speaks it, or "
                    "upgrade letta-conversations-mcp"
                )
            log.info("connected to Letta Code's App Server at %s (%s)", self.where, self.info.get("letta_code_version"))
            return ws

    async def connect(self, target: Target) -> None:
        """Make sure there is a connection (a new one counts in ``generation``)."""
        await self._connected(target)

    async def _open(self, target: Target) -> ClientConnection:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, InvalidURI

        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        for attempt, delay in enumerate((0.0, *BACKOFF)):
            await asyncio.sleep(delay)
            try:
                return await connect(
                    self.url, additional_headers=headers, open_timeout=min(10.0, self.timeout), max_size=None
                )
            except InvalidStatus as exc:
                raise refused(exc.response.status_code, self.where, token=bool(self._token)) from None
            except InvalidURI:
                raise Rejected(
                    f"LETTA_BASE_URL {self.where} is not a WebSocket URL, e.g. ws://127.0.0.1:8285/ws"
                ) from None
            except (OSError, TimeoutError) as exc:
                log.info(
                    "App Server at %s: connection attempt %d failed (%s)", self.where, attempt + 1, type(exc).__name__
                )
            except Exception as exc:  # a handshake the App Server broke off
                log.info("App Server at %s: handshake %d failed (%s)", self.where, attempt + 1, type(exc).__name__)
        raise Unreachable(
            f"Letta Code's App Server at {self.where} is not reachable (could not {target.action}). Start it with "
            "`letta server --listen ws://127.0.0.1:PORT`, and check that LETTA_BASE_URL points at it"
        )

    async def aclose(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    # -- reading -------------------------------------------------------------------------------
    async def _read(self, ws: ClientConnection) -> None:
        """Hand each frame to the command waiting for it, or to the listeners of its runtime."""
        try:
            async for raw in ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    log.warning("App Server at %s sent a frame that is not JSON; ignored", self.where)
                    continue
                if isinstance(frame, dict):
                    self._dispatch(frame)
        except Exception as exc:  # the connection broke: its waiters learn it below
            log.info("App Server at %s: connection lost (%s)", self.where, type(exc).__name__)
        finally:
            if self._ws is ws:
                self._ws = None
            lost = ConnectionLost()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(lost)
            self._pending.clear()
            for chunks in self._chunked.values():
                chunks.put_nowait(None)
            for inboxes in self._listeners.values():
                for inbox in inboxes:
                    inbox.put_nowait(None)

    def _dispatch(self, frame: Frame) -> None:
        chunks = self._chunked.get(str(frame.get("request_id"))) if "request_id" in frame else None
        if chunks is not None:
            chunks.put_nowait(frame)
            return
        future = self._pending.pop(str(frame.get("request_id")), None) if "request_id" in frame else None
        if future is not None:
            if not future.done():
                future.set_result(frame)
            return
        runtime = frame.get("runtime")
        if isinstance(runtime, dict):
            key = (str(runtime.get("agent_id")), str(runtime.get("conversation_id")))
            for inbox in self._listeners.get(key, ()):
                inbox.put_nowait(frame)

    @contextlib.asynccontextmanager
    async def listen(self, runtime: Runtime) -> AsyncIterator[Inbox]:
        """The frames addressed to ``runtime`` while the block runs (None: the socket dropped)."""
        inbox: Inbox = asyncio.Queue()
        self._listeners.setdefault(runtime, set()).add(inbox)
        try:
            yield inbox
        finally:
            inboxes = self._listeners.get(runtime, set())
            inboxes.discard(inbox)
            if not inboxes:
                self._listeners.pop(runtime, None)

    # -- commands ------------------------------------------------------------------------------
    async def request(self, command: dict[str, Any], target: Target, *, send: bool = False) -> Frame:
        """Send one command and return its reply (``send``: a message, which may be stored if the reply is lost).

        A command other than a send whose socket turns out to be gone (the App Server restarted) is
        sent once more on a new connection: it changes nothing, or the same thing twice.
        """
        ws = await self._connected(target)
        try:
            return await self._exchange(ws, command, target, send=send)
        except SocketGone:
            if send:
                raise self._broken(target, send) from None
            log.info("App Server at %s: the socket was gone; sending %s again", self.where, command["type"])
        try:
            return await self._exchange(await self._connected(target), command, target)
        except SocketGone:
            raise self._broken(target, send) from None

    async def _exchange(
        self, ws: ClientConnection, command: dict[str, Any], target: Target, *, send: bool = False
    ) -> Frame:
        kind = str(command["type"])
        request_id = f"{kind}-{next(self._ids)}"
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await ws.send(json.dumps({**command, "request_id": request_id}))
            return await asyncio.wait_for(future, self.timeout)
        except ConnectionLost:
            raise SocketGone from None
        except TimeoutError:
            raise self._silent(kind, target, send) from None
        except LettaRequestError:
            raise
        except Exception as exc:  # the send itself failed: the socket is gone
            log.info("App Server at %s: sending %s failed (%s)", self.where, kind, type(exc).__name__)
            if self._ws is ws:
                self._ws = None
            raise SocketGone from None
        finally:
            self._pending.pop(request_id, None)

    async def request_until(
        self, command: dict[str, Any], target: Target, runtime: Runtime, done: Callable[[Frame], bool]
    ) -> Frame:
        """Send a command the App Server answers only with events (``change_device_state``) and return
        the first event of ``runtime`` that ``done`` accepts, within ``timeout``."""
        kind = str(command["type"])
        ws = await self._connected(target)
        async with self.listen(runtime) as inbox:
            try:
                await ws.send(json.dumps({**command, "request_id": f"{kind}-{next(self._ids)}"}))
            except Exception as exc:  # the send itself failed: the socket is gone
                log.info("App Server at %s: sending %s failed (%s)", self.where, kind, type(exc).__name__)
                raise self._broken(target, False) from None
            try:
                async with asyncio.timeout(self.timeout):
                    while True:
                        frame = await inbox.get()
                        if frame is None:
                            raise self._broken(target, False)
                        if done(frame):
                            return frame
            except TimeoutError:
                raise self._silent(kind, target, False) from None

    async def request_chunks(self, command: dict[str, Any], target: Target) -> list[Frame]:
        """Send a command answered in several replies (``done: true`` on the last, as ``list_memory``)
        and return them all; a failed reply ends the list. Each reply must come within ``timeout``."""
        kind = str(command["type"])
        request_id = f"{kind}-{next(self._ids)}"
        chunks: Inbox = asyncio.Queue()
        ws = await self._connected(target)
        self._chunked[request_id] = chunks
        replies: list[Frame] = []
        try:
            await ws.send(json.dumps({**command, "request_id": request_id}))
            while not replies or (replies[-1].get("done") is not True and replies[-1].get("success") is not False):
                reply = await asyncio.wait_for(chunks.get(), self.timeout)
                if reply is None:
                    raise self._broken(target, False)
                replies.append(reply)
            return replies
        except TimeoutError:
            raise self._silent(kind, target, False) from None
        except LettaRequestError:
            raise
        except Exception as exc:  # the send itself failed: the socket is gone
            log.info("App Server at %s: sending %s failed (%s)", self.where, kind, type(exc).__name__)
            raise self._broken(target, False) from None
        finally:
            self._chunked.pop(request_id, None)

    def _silent(self, kind: str, target: Target, send: bool) -> StreamBroken:
        return StreamBroken(
            f"Letta Code's App Server at {self.where} did not answer {kind!r} within {self.timeout:g} s "
            f"while trying to {target.action} (it may be busy, or not know the command): try again, or raise "
            "LETTA_MCP_REQUEST_TIMEOUT",
            may_be_stored=send,
        )

    def _broken(self, target: Target, send: bool) -> StreamBroken:
        return StreamBroken(
            f"the connection to Letta Code's App Server at {self.where} broke while trying to {target.action}. "
            "Try again; it reconnects on the next call",
            may_be_stored=send,
        )


class ConnectionLost(Exception):
    """The socket closed while a command waited for its reply (internal)."""


class SocketGone(Exception):
    """The command's socket closed before its reply came (internal: retried or turned into StreamBroken)."""


def refused(status: int, where: str, *, token: bool) -> LettaRequestError:
    """The failure for an upgrade the App Server answered with an HTTP status instead of a socket."""
    if status in (401, 403):
        fix = (
            "LETTA_API_KEY is not the token it expects: set it to the content of its --ws-token-file"
            if token
            else "it requires a token: set LETTA_API_KEY to the content of its --ws-token-file"
        )
        return Rejected(f"Letta Code's App Server at {where} refused the connection ({status}): {fix}", status=status)
    return Rejected(
        f"{where} answered the WebSocket upgrade with HTTP {status}: check that LETTA_BASE_URL points at "
        "Letta Code's App Server (its `WebSocket: ws://…/ws` line)",
        status=status,
    )
