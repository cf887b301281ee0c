"""LSP base-protocol framing that a bad frame cannot wedge (LSP 3.17, "Base Protocol").

Every message is header lines ``Name: value\\r\\n``, an empty line, then a body of
exactly ``Content-Length`` bytes of UTF-8 JSON. pygls 2 reads that in
``pygls.io_.run_async``, which accepts only the exact bytes
``Content-Length: <digits>\\r\\n``, keeps a length once seen until a body is read,
and reads whatever length is announced: a length a few bytes off, written in
lower case or not a number leaves it waiting for a header that never comes, and
a 21-digit one kills the process (OverflowError). ``start_io`` / ``start_tcp``
run a pygls server with this module's reader instead (pygls itself unchanged):

* ``MessageReader`` turns bytes into ``Received`` messages and ``Rejected``
  frames without doing I/O; fed in chunks of any size it gives the same events.
* Header names are case-insensitive and unknown headers (``Content-Type``) are
  ignored; a line may end in ``\\n`` alone.
* Resynchronisation: a header block begins at ``Content-Length`` wherever it
  occurs in a line, so what is left of a frame whose length was too short, or
  any other junk, is dropped (and logged) up to the next header. A JSON string
  cannot hold a raw line break, so text inside a body can never pass for a
  whole header line; at worst a body's text makes a bogus header that is
  dropped in turn.
* A length too long by a few bytes shows as a complete JSON value followed by
  the start of the next header; those bytes are put back and read as a header.
  (It is seen only once the next message arrives: until then more body bytes
  may still legitimately come.)
* A header block without a usable length (missing, not a number, over the
  limit) is refused without reading or allocating its body: the reader drops
  bytes up to the next ``Content-Length``, keeping only the first
  ``HEAD_BYTES`` to read an id from. Draining the announced number of bytes
  instead would be exact for a real client (vscode-jsonrpc always counts
  right, so an oversized announcement is a genuinely huge message, which the
  resync drops just as well) but would swallow every later message after a
  corrupt length such as ``100000000000000000000``: the wedge this module
  exists to prevent.

Which frames are answered (JSON-RPC 2.0, section 5, "Response object"): a
rejected frame gets an error response with its id when the id can be read
(``read_members`` reads the top-level members of a body that is cut short or
followed by junk); when the id cannot be read, the response carries
``"id": null``, as JSON-RPC 2.0 prescribes for a parse error or an invalid
request, because the frame may have been a request whose sender is waiting,
and vscode-jsonrpc logs such a response ("Received response message without
id") where the user can see it. No response goes to what is known to be a
notification or a response, nor to junk between frames (it has no frame to
answer; usually it is the tail of a frame already answered): those are logged.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import queue
import re
import select
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 64 * 2**20
PARSE_ERROR = -32700
INVALID_REQUEST = -32600

CHUNK_BYTES = 2**16  # one read from the client
HEAD_BYTES = 4096  # kept of a skipped or unparsable body, to read its id and method from
FLUSH_TIMEOUT_S = 5.0  # at exit, how long queued messages may take to reach the client
MAX_HEADER_LINE = 8192  # a line this long that has not ended is junk (kept from its last Content-Length on)
MARKER = b"content-length"
HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:[ \t]*(.*?)[ \t]*")
DIGITS = re.compile(rb"[0-9]+")
JSON_WS = re.compile(r"[ \t\n\r]*")
DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Received:
    """A JSON-RPC 2.0 message, as its decoded JSON object."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    """A frame that could not be read as a JSON-RPC message.

    ``answer``: whether an error response is due (false for what is known to be a
    notification or a response); ``id`` is ``None`` when it could not be read.
    ``method`` and ``params`` are filled in where the body could be read that far.
    """

    code: int
    reason: str
    id: int | str | None = None
    answer: bool = True
    method: str | None = None
    params: Any = None


Event = Received | Rejected


class MessageReader:
    """Bytes from the client in, ``Received`` / ``Rejected`` events out, no I/O.

    Three states: reading header lines; reading a body of a known length
    (``_length``); skipping an unreadable body up to the next header (``_skip``).
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        self.max_message_bytes = max_message_bytes
        self._buf = bytearray()
        self._length: int | None = None
        self._skip: _Skip | None = None
        self._junk = 0  # bytes dropped between frames since the last header block
        self._junk_sample = b""
        self._new_block()

    @property
    def buffered(self) -> int:
        """Bytes held: at most one body of an accepted length, else a few KiB."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def _new_block(self) -> None:
        self._in_block = False  # a non-empty line has been read since the last body
        self._announced: int | None = None
        self._problem = "no Content-Length header"

    def _step(self, events: list[Event]) -> bool:
        """Consumes what it can; False when it needs more bytes."""
        if self._length is not None:
            return self._read_body(events)
        if self._skip is not None:
            return self._skip_body(events)
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > MAX_HEADER_LINE:
                self._drop_unended_line()
            return False
        line = bytes(self._buf[:end]).removesuffix(b"\r")
        del self._buf[: end + 1]
        self._header_line(line)
        return True

    def _header_line(self, line: bytes) -> None:
        start = line.lower().rfind(MARKER, 1)
        if start > 0:
            self._drop_junk(line[:start])
            line = line[start:]
        if not line:
            if self._in_block:
                self._end_block()
            return
        self._in_block = True
        match = HEADER.fullmatch(line)
        if match is None:
            self._drop_junk(line)
        elif match[1].lower() == MARKER:
            self._set_length(match[2])

    def _set_length(self, value: bytes) -> None:
        self._announced = None
        digits = value.lstrip(b"0") or b"0"
        if not DIGITS.fullmatch(value):
            self._problem = f"Content-Length {_show(value)} is not a number"
        elif len(digits) > len(str(self.max_message_bytes)) or int(digits) > self.max_message_bytes:
            self._problem = (
                f"Content-Length {_show(value)} is over the limit of {self.max_message_bytes} bytes "
                "($VQLSP_MAX_MESSAGE_BYTES)"
            )
        else:
            self._announced = int(digits)

    def _end_block(self) -> None:
        if self._junk:
            log.warning("dropped %d bytes between messages, starting %r", self._junk, self._junk_sample)
            self._junk, self._junk_sample = 0, b""
        if self._announced is not None:
            self._length = self._announced
        else:
            self._skip = _Skip(self._problem)
        self._new_block()

    def _drop_unended_line(self) -> None:
        """Bounds a line that has not ended: keeps from its last ``Content-Length`` on
        (a header may still be arriving), or else just enough bytes to hold the
        start of one."""
        start = self._buf.lower().rfind(MARKER, 1)
        keep_from = start if start > 0 else len(self._buf) - (len(MARKER) - 1)
        self._drop_junk(self._buf[:keep_from])
        del self._buf[:keep_from]

    def _drop_junk(self, data: bytes | bytearray) -> None:
        """Counts junk for one log line per run of it (see ``_end_block``)."""
        if data.strip():
            self._junk_sample = self._junk_sample or bytes(data[:80])
            self._junk += len(data)

    def _read_body(self, events: list[Event]) -> bool:
        assert self._length is not None
        if len(self._buf) < self._length:
            return False
        body = bytes(self._buf[: self._length])
        del self._buf[: self._length]
        self._length = None
        event, surplus = decode_body(body)
        self._buf[:0] = surplus
        events.append(event)
        return True

    def _skip_body(self, events: list[Event]) -> bool:
        assert self._skip is not None
        found = self._buf.lower().find(MARKER)
        if (rejected := self._skip.answer(self._buf if found < 0 else self._buf[:found], found >= 0)) is not None:
            events.append(rejected)
        end = found if found >= 0 else max(0, len(self._buf) - (len(MARKER) - 1))  # keep what may start a marker
        self._skip.drop(self._buf[:end])
        del self._buf[:end]
        if found < 0:
            return False
        self._skip = None
        return True


class _Skip:
    """A body being dropped, answered as soon as its first bytes tell enough: a
    whole JSON object, ``HEAD_BYTES`` of it, or the next header."""

    def __init__(self, problem: str):
        self.problem = problem
        self.head: bytearray | None = bytearray()  # the first bytes dropped; None once answered

    def answer(self, pending: bytes | bytearray, ended: bool) -> Rejected | None:
        """The rejection, once; ``pending``: the body's bytes not dropped yet."""
        if self.head is None:
            return None
        head = (self.head + pending[:HEAD_BYTES])[:HEAD_BYTES]
        members, complete = read_members(head.decode("utf-8", "replace"))
        if not (complete or ended or len(head) >= HEAD_BYTES):
            return None
        self.head = None
        return _rejected(INVALID_REQUEST, f"{self.problem}; the body was skipped", members, complete)

    def drop(self, data: bytes | bytearray) -> None:
        if self.head is not None:
            self.head += data[: HEAD_BYTES - len(self.head)]


def decode_body(body: bytes) -> tuple[Event, bytes]:
    """The event for one body, and the bytes after its JSON value if there are any
    (the length was too long: those bytes belong to the next frame)."""
    try:
        text, bad_byte = body.decode("utf-8"), len(body)
    except UnicodeDecodeError as exc:
        text, bad_byte = body.decode("utf-8", "surrogateescape"), exc.start
    try:
        value, end = DECODER.raw_decode(text, _skip_ws(text, 0))
    except (ValueError, RecursionError) as exc:
        return _unparsable(body, f"the body is not JSON ({_first_line(exc)})"), b""
    end = _skip_ws(text, end)
    byte_end = len(body) if end == len(text) else len(text[:end].encode("utf-8", "surrogateescape"))
    if bad_byte < byte_end:
        return _unparsable(body, f"the body is not UTF-8 (byte {bad_byte})"), b""
    if byte_end < len(body):
        reason = f"Content-Length {len(body)} runs {len(body) - byte_end} bytes past the end of its JSON body"
        members = value if isinstance(value, dict) else {}
        return _rejected(INVALID_REQUEST, reason, members, complete=True), body[byte_end:]
    return check_message(value), b""


def check_message(value: Any) -> Event:
    """``Received`` for a JSON-RPC 2.0 request, notification or response object."""
    if not isinstance(value, dict):
        reason = f"a JSON {type(value).__name__} is not a JSON-RPC message (LSP sends one object per message)"
        return Rejected(INVALID_REQUEST, reason)
    is_call = isinstance(value.get("method"), str)
    is_response = "id" in value and ("result" in value or "error" in value)
    if value.get("jsonrpc") != "2.0" or not (is_call or is_response):
        reason = 'not a JSON-RPC 2.0 message (needs "jsonrpc": "2.0" and a string "method", or a result or error)'
        return _rejected(INVALID_REQUEST, reason, value, complete=True)
    return Received(value)


def read_members(text: str) -> tuple[dict[str, Any], bool]:
    """The top-level members of a JSON object that may be cut short or followed by
    junk, as far as they can be read, and whether the object was read to its end."""
    members: dict[str, Any] = {}
    i = _skip_ws(text, 0)
    if not text.startswith("{", i):
        return members, False
    i = _skip_ws(text, i + 1)
    if text.startswith("}", i):
        return members, True
    while True:
        try:
            key, i = DECODER.raw_decode(text, i)
            i = _skip_ws(text, i)
            if not isinstance(key, str) or not text.startswith(":", i):
                return members, False
            value, i = DECODER.raw_decode(text, _skip_ws(text, i + 1))
        except (ValueError, RecursionError):
            return members, False
        members[key] = value
        i = _skip_ws(text, i)
        if text.startswith("}", i):
            return members, True
        if not text.startswith(",", i):
            return members, False
        i = _skip_ws(text, i + 1)


def _rejected(code: int, reason: str, members: dict[str, Any], complete: bool) -> Rejected:
    msg_id = members.get("id")
    method = members.get("method")
    method = method if isinstance(method, str) else None
    known_notification = complete and method is not None and "id" not in members
    known_response = complete and method is None and "id" in members and ("result" in members or "error" in members)
    return Rejected(
        code, reason,
        id=msg_id if isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool) else None,
        answer=not (known_notification or known_response),
        method=method,
        params=members.get("params") if complete else None,
    )


def _unparsable(body: bytes, reason: str) -> Rejected:
    members, _ = read_members(body[:HEAD_BYTES].decode("utf-8", "replace"))
    return _rejected(PARSE_ERROR, reason, members, complete=False)


def _skip_ws(text: str, i: int) -> int:
    return JSON_WS.match(text, i).end()  # type: ignore[union-attr]  (matches the empty string)


def _show(value: bytes) -> str:
    text = value.decode("latin-1")
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _first_line(exc: BaseException) -> str:
    return f"{exc}".splitlines()[0] if f"{exc}" else type(exc).__name__


# -- transports --------------------------------------------------------------------------------


class Receiver(Protocol):
    """What the reader feeds: ``VqlspProtocol.receive``."""

    def receive(self, event: Event) -> None: ...


class Server(Protocol):
    """The part of pygls's ``JsonRPCServer`` these transports use."""

    protocol: Any

    def shutdown(self) -> None: ...


async def pump(read: Callable[[], Awaitable[bytes]], receiver: Receiver, max_message_bytes: int) -> None:
    """Reads until the client closes the stream, handing every event to ``receiver``."""
    reader = MessageReader(max_message_bytes)
    while data := await read():
        for event in reader.feed(data):
            try:
                receiver.receive(event)
            except Exception:  # the boundary: one message that fails never stops the server
                log.exception("could not handle a message")


class StdinChunks:
    """Reads stdin on a daemon thread, one chunk per ``read``.

    A daemon thread (not an executor, which is joined at exit) so that ``exit``
    ends the process even while the client keeps stdin open; ``os.read`` (not
    ``sys.stdin.buffer``) so that no buffer lock is held by a thread at shutdown.
    """

    def __init__(self, fd: int):
        self._fd = fd
        self._wanted = threading.Semaphore(0)
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._run, name="vqlsp-stdin", daemon=True).start()

    def _run(self) -> None:
        while True:
            self._wanted.acquire()
            try:
                chunk = os.read(self._fd, CHUNK_BYTES)
            except OSError:
                chunk = b""
            try:
                self._loop.call_soon_threadsafe(self._chunks.put_nowait, chunk)
            except RuntimeError:  # the loop has closed
                return
            if not chunk:
                return

    async def read(self) -> bytes:
        self._wanted.release()
        return await self._chunks.get()


class MessageWriter:
    """Writes each message whole to a file descriptor, in order, on a thread of its own.

    ``write`` only queues the message, so the event loop never waits for the client
    to read: a pipe holds 64 KiB, and a client that parses a long document's
    diagnostics push (1.3 MB) as it reads it held the loop, and every keystroke
    behind it, until the last byte was taken (68-78 ms in ``vqlsp bench typing``
    at 100k tokens). pygls's ``StdoutWriter`` hands a message to
    ``sys.stdout.buffer``: a descriptor that is non-blocking (the flag belongs to
    the open file, which the process may share with whoever started it) makes a
    large message fail part way with ``BlockingIOError``, which pygls logs and
    forgets; the client then reads the next header as body bytes and waits for
    ever. Here a partial write goes on where it stopped (waiting until the
    descriptor can take more). Once the client has gone (a broken pipe) what is
    left is dropped, with one log line. ``close`` (and the interpreter's exit)
    writes what is queued first."""

    def __init__(self, fd: int):
        self.fd = fd
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="vqlsp-stdout", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def write(self, data: bytes) -> None:
        if not self._closed:
            self._queue.put(bytes(data))  # (a copy of a buffer the caller may reuse)

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until everything queued so far is written (or the client is gone)."""
        done = threading.Event()
        self._queue.put(done)  # type: ignore[arg-type]
        done.wait(timeout if self._thread.is_alive() else 0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(FLUSH_TIMEOUT_S)
            atexit.unregister(self.flush)
            os.close(self.fd)

    def _run(self) -> None:
        gone = False
        while (item := self._queue.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
            elif not gone:
                try:
                    self._write(item)
                except OSError as exc:  # the client closed the connection: nothing more reaches it
                    log.error("cannot write to the client (%s); dropping what is left", exc)
                    gone = True

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                select.select([], [self.fd], [])


def protocol_stdout() -> int:
    """A descriptor of this process's stdout kept for LSP messages alone; descriptor 1 and
    ``sys.stdout`` then point at stderr, so a stray ``print`` or a native library's output
    lands in the log instead of inside a frame."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return fd


def start_io(server: Server, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
    """``server.start_io()`` with ``MessageReader`` framing.

    ``SystemExit`` from the ``exit`` notification propagates (pygls swallows it),
    so the process exits with LSP's code: 0 after ``shutdown``, 1 otherwise.
    """
    writer = MessageWriter(protocol_stdout())
    server.protocol.set_writer(writer)

    async def main() -> None:
        await pump(StdinChunks(sys.stdin.fileno()).read, server.protocol, max_message_bytes)

    try:
        asyncio.run(main())
    except BrokenPipeError:
        log.error("the client closed the connection; stopping")
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        writer.flush()


def start_tcp(server: Server, host: str, port: int, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
    """``server.start_tcp()`` with ``MessageReader`` framing: one client; the server
    stops when its connection closes (as pygls's does)."""

    async def main() -> None:
        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            server.protocol.set_writer(writer)
            await pump(lambda: reader.read(CHUNK_BYTES), server.protocol, max_message_bytes)
            listener.close()

        listener = await asyncio.start_server(connection, host, port)
        log.info("Serving on %s", ", ".join(str(sock.getsockname()) for sock in listener.sockets))
        async with listener:
            await listener.serve_forever()

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        pass
    finally:
        server.shutdown()
