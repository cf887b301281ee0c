"""Bad frames never wedge the server (``vqlsp.lsp.framing``), and requests after shutdown are answered.

Unit: ``MessageReader`` on byte streams, fed whole, one byte at a time and split
at every byte boundary, which must all give the same events. End-to-end: the
real server over stdio (and once over TCP), written to as raw bytes: each bad
frame is answered with an error carrying its id where one can be read, and the
next valid request is served. No model is loaded (no ``initialized`` is sent),
so each server costs only its start-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from vqlsp.lsp.framing import (
    HEAD_BYTES,
    INVALID_REQUEST,
    MAX_HEADER_LINE,
    PARSE_ERROR,
    MessageReader,
    MessageWriter,
    Received,
    Rejected,
    read_members,
)

from .harness import SERVER, SERVER_ENV, WAIT_S

HOVER = {"jsonrpc": "2.0", "id": 1, "method": "textDocument/hover",
         "params": {"textDocument": {"uri": "file:///x.txt"}, "position": {"line": 0, "character": 0}}}
NEXT = {"jsonrpc": "2.0", "id": 2, "method": "shutdown"}
HUGE = b"100000000000000000000"


def encode(message: Any) -> bytes:
    return message if isinstance(message, bytes) else json.dumps(message).encode()


def frame(message: Any, *, delta: int = 0, header: bytes = b"Content-Length", length: bytes | None = None) -> bytes:
    """One frame; ``delta`` misstates the length, ``length`` replaces it outright."""
    body = encode(message)
    return header + b": " + (length if length is not None else b"%d" % (len(body) + delta)) + b"\r\n\r\n" + body


def summary(events: list) -> list[tuple]:
    """("ok", id) for a message, (code, id, answered) for a rejected frame."""
    return [("ok", e.payload.get("id")) if isinstance(e, Received) else (e.code, e.id, e.answer) for e in events]


def feed_all(data: bytes, pieces: list[int], **kwargs) -> list:
    reader, events, start = MessageReader(**kwargs), [], 0
    for end in [*pieces, len(data)]:
        events += reader.feed(data[start:end])
        start = end
    return events


# -- the reader, on bytes --------------------------------------------------------------------

CASES = {
    # name: (bytes before the valid NEXT frame, events expected before NEXT's)
    "valid": (frame(HOVER), [("ok", 1)]),
    "lower-case header": (frame(HOVER, header=b"content-length"), [("ok", 1)]),
    "upper-case header, Content-Type, bare LF": (
        b"Content-Type: application/vscode-jsonrpc; charset=utf-8\nCONTENT-LENGTH:%d\n\n" % len(encode(HOVER))
        + encode(HOVER), [("ok", 1)]),
    "blank lines between frames": (b"\r\n\r\n" + frame(HOVER) + b"\r\n", [("ok", 1)]),
    "leading zeros": (frame(HOVER, length=b"000%d" % len(encode(HOVER))), [("ok", 1)]),
    "length 3 bytes short": (frame(HOVER, delta=-3), [(PARSE_ERROR, 1, True)]),
    "length 1 byte short": (frame(HOVER, delta=-1), [(PARSE_ERROR, 1, True)]),
    "length 4 bytes long": (frame(HOVER, delta=4), [(INVALID_REQUEST, 1, True)]),
    "length long past the next header": (frame(HOVER, delta=30), [(INVALID_REQUEST, 1, True)]),
    "length not a number": (frame(HOVER, length=b"12x"), [(INVALID_REQUEST, 1, True)]),
    "length negative": (frame(HOVER, length=b"-5"), [(INVALID_REQUEST, 1, True)]),
    "no Content-Length": (b"Content-Type: x\r\n\r\n" + encode(HOVER), [(INVALID_REQUEST, 1, True)]),
    "huge length": (frame(HOVER, length=HUGE), [(INVALID_REQUEST, 1, True)]),
    "length 0": (frame(b""), [(PARSE_ERROR, None, True)]),
    "body not JSON, id readable": (frame(b'{"jsonrpc": "2.0", "id": 1, "method": oops}'), [(PARSE_ERROR, 1, True)]),
    "body not JSON at all": (frame(b"hello there"), [(PARSE_ERROR, None, True)]),
    "body not UTF-8": (frame(b'{"jsonrpc": "2.0", "id": 1, "method": "\xff"}'), [(PARSE_ERROR, 1, True)]),
    "body nested too deep": (frame(b"[" * 100_000), [(PARSE_ERROR, None, True)]),
    "body a JSON array": (frame([HOVER]), [(INVALID_REQUEST, None, True)]),
    "body a JSON string": (frame("hello"), [(INVALID_REQUEST, None, True)]),
    "object without jsonrpc": (frame({"id": 1, "method": "x"}), [(INVALID_REQUEST, 1, True)]),
    "notification with a bad length": (  # known to be a notification: no response is due
        frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}, delta=2), [(INVALID_REQUEST, None, False)]),
    "junk between frames": (b"garbage\r\nmore}" + frame(HOVER), [("ok", 1)]),
}


@pytest.mark.parametrize("name", CASES)
def test_reader_answers_bad_frames_and_reads_the_next(name):
    data, expected = CASES[name]
    data += frame(NEXT)
    whole = feed_all(data, [])
    assert summary(whole) == [*expected, ("ok", 2)]
    assert feed_all(data, list(range(1, len(data)))) == whole  # one byte at a time
    if len(data) < 2000:
        for split in range(1, len(data)):
            assert feed_all(data, [split]) == whole, split


def test_reader_rejected_frames_say_why():
    reasons = {name: [e.reason for e in feed_all(CASES[name][0] + frame(NEXT), []) if isinstance(e, Rejected)][0]
               for name in ["length 4 bytes long", "length not a number", "huge length", "no Content-Length"]}
    assert reasons["length 4 bytes long"] == f"Content-Length {len(encode(HOVER)) + 4} runs 4 bytes past the end of its JSON body"
    assert "'12x' is not a number" in reasons["length not a number"]
    assert f"'{HUGE.decode()}' is over the limit of 67108864 bytes" in reasons["huge length"]
    assert reasons["no Content-Length"].startswith("no Content-Length header")
    # The whole message of an overlong frame is known: a lost didChange can be desynced.
    rejected = feed_all(frame(HOVER, delta=4) + frame(NEXT), [])[0]
    assert (rejected.method, rejected.params) == ("textDocument/hover", HOVER["params"])


def test_reader_reads_back_to_back_frames_and_a_configured_limit():
    big = {"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {"padding": "x" * 300}}
    data = frame(HOVER) + frame(big) + frame(NEXT)
    assert summary(feed_all(data, [])) == [("ok", 1), ("ok", 7), ("ok", 2)]
    assert summary(feed_all(data, [], max_message_bytes=200)) == [("ok", 1), (INVALID_REQUEST, 7, True), ("ok", 2)]


def test_reader_answers_a_skipped_request_without_waiting_for_the_next():
    # The client waits for this answer before it sends anything else.
    for data in [frame(HOVER, length=HUGE), frame(HOVER, length=b"x"), b"Content-Type: x\r\n\r\n" + encode(HOVER)]:
        assert summary(feed_all(data, [])) == [(INVALID_REQUEST, 1, True)]
        assert summary(feed_all(data, list(range(1, len(data))))) == [(INVALID_REQUEST, 1, True)]


def test_reader_memory_stays_bounded():
    # An oversized body is skipped without being held: only a marker's worth of bytes stays.
    reader = MessageReader(max_message_bytes=1000)
    events = reader.feed(frame(HOVER, length=b"50000000"))
    for _ in range(160):  # 10 MiB of body, as a client would send it
        events += reader.feed(b"a" * 65536)
        assert reader.buffered < len(b"content-length")
    assert summary(events) == [(INVALID_REQUEST, 1, True)]  # answered as soon as its head was read
    assert summary(reader.feed(frame(NEXT))) == [("ok", 2)]
    # Junk without a line end is dropped as it comes.
    reader = MessageReader()
    for _ in range(100):
        assert reader.feed(b"x" * 4096) == []
        assert reader.buffered <= MAX_HEADER_LINE + 4096
    assert summary(reader.feed(frame(NEXT))) == [("ok", 2)]


def test_reader_resyncs_past_header_text_inside_a_skipped_body():
    # A document that talks about LSP frames: its text holds "Content-Length:" (JSON-escaped,
    # so never as a whole header line); the skipped body must not be taken for a frame.
    text = 'Write "Content-Length: 52\\r\\n\\r\\n{}" and then }Content-Length: 7\n\n'
    did_open = {"jsonrpc": "2.0", "id": 5, "method": "textDocument/didOpen", "params": {"text": text * 50}}
    events = feed_all(frame(did_open, length=b"9" * 30) + frame(NEXT), [])
    assert summary(events) == [(INVALID_REQUEST, 5, True), ("ok", 2)]


def test_read_members_reads_what_it_can():
    assert read_members('{"jsonrpc": "2.0", "id": 3, "method": "x", "params": {"a": [1, 2') == (
        {"jsonrpc": "2.0", "id": 3, "method": "x"}, False)
    assert read_members('  {"id": "a\\"b"}junk') == ({"id": 'a"b'}, True)
    assert read_members('{"params": {"id": 9}, "x"') == ({"params": {"id": 9}}, False)  # nested ids are not ids
    assert read_members("[1, 2]") == ({}, False)
    assert read_members("{}") == ({}, True)
    assert read_members("") == ({}, False)
    # Only the head of an unparsable body is read for its id: a bounded amount of work.
    late_id = b'{"params": "' + b"x" * HEAD_BYTES + b'", "id": 4, oops}'
    assert summary(feed_all(frame(late_id), [])) == [(PARSE_ERROR, None, True)]


def test_a_notification_sent_as_json_text_is_one_whole_frame():
    """``VqlspProtocol.notify_json_text`` (a long document's diagnostics, encoded once): the
    length counts bytes, not characters, and the frame reads back as the message."""
    from vqlsp.lsp.core import VqlspServer

    server = VqlspServer()
    try:
        written: list[bytes] = []
        server.protocol.set_writer(type("Writer", (), {"write": lambda self, data: written.append(data)})())
        params = {"uri": "file:///caf\u00e9.md", "diagnostics": [{"message": "na\u00efve \U0001F44D"}]}
        text = json.dumps(params, ensure_ascii=False).encode()
        server.protocol.notify_json_text("textDocument/publishDiagnostics", [text[:20], text[20:]])
        assert len(written) == 1
        events = feed_all(written[0] + frame(NEXT), [])
        assert [e.payload for e in events] == [
            {"jsonrpc": "2.0", "method": "textDocument/publishDiagnostics", "params": params}, NEXT]
    finally:
        server.jobs.close()
        server.text_thread.shutdown(wait=False)


# -- the real server, over stdio and TCP -----------------------------------------------------


class RawClient:
    """Raw bytes to the server; its output read frame by frame, waiting with timeouts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.buffer = b""
        self.received: list[dict] = []

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, msg_id: int, method: str, params: Any = None) -> None:
        await self.send(frame({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}))

    async def response(self, msg_id: int | str | None) -> dict:
        """The response to ``msg_id`` (``None``: an error response with ``"id": null``)."""

        async def find() -> dict:
            while True:
                for message in self.received:
                    if "method" not in message and message.get("id", "absent") == msg_id:
                        self.received.remove(message)
                        return message
                self.received.append(await self._next_message())

        return await asyncio.wait_for(find(), WAIT_S)

    async def _next_message(self) -> dict:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            await self._fill()
        length = int(re.search(rb"Content-Length: (\d+)", self.buffer[:end])[1])
        while len(self.buffer) < end + 4 + length:
            await self._fill()
        body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
        return json.loads(body)

    async def _fill(self) -> None:
        chunk = await self.reader.read(65536)
        assert chunk, "the server closed its output"
        self.buffer += chunk

    def responses_without_id(self) -> list[dict]:
        return [m for m in self.received if "method" not in m and m.get("id", "absent") is None]


async def start_stdio(**env: str) -> tuple[asyncio.subprocess.Process, RawClient]:
    process = await asyncio.create_subprocess_exec(
        *SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**SERVER_ENV, **env},
    )
    return process, RawClient(process.stdout, process.stdin)


async def shut_down(process: asyncio.subprocess.Process, client: RawClient, msg_id: int = 99) -> None:
    await client.request(msg_id, "shutdown")
    assert (await client.response(msg_id)) == {"jsonrpc": "2.0", "id": msg_id, "result": None}
    await exit_cleanly(process, client)


async def exit_cleanly(process: asyncio.subprocess.Process, client: RawClient) -> None:
    """``exit`` after ``shutdown``: the process ends with code 0 and no traceback."""
    await client.send(frame({"jsonrpc": "2.0", "method": "exit"}))
    code = await asyncio.wait_for(process.wait(), WAIT_S)
    stderr = (await process.stderr.read()).decode()
    assert "Traceback" not in stderr, stderr
    assert code == 0, stderr


def initialize(msg_id: int) -> dict:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "initialize",
            "params": {"processId": None, "capabilities": {}, "rootUri": None}}


E2E_CASES = {
    # name: (the bad frame, made from an initialize request with id 1; the expected error, None if served)
    "length 3 bytes short": (frame(initialize(1), delta=-3), PARSE_ERROR),
    "length 4 bytes long": (frame(initialize(1), delta=4), INVALID_REQUEST),
    "length not a number": (frame(initialize(1), length=b"eighty"), INVALID_REQUEST),
    "lower-case header": (frame(initialize(1), header=b"content-length"), None),
    "huge length": (frame(initialize(1), length=HUGE), INVALID_REQUEST),
    "body not JSON": (frame(encode(initialize(1))[:-1] + b",}"), PARSE_ERROR),
    "body JSON, not an object": (frame([initialize(1)]), INVALID_REQUEST),
    "object, not JSON-RPC": (frame({k: v for k, v in initialize(1).items() if k != "jsonrpc"}), INVALID_REQUEST),
}


@pytest.mark.parametrize("name", E2E_CASES)
async def test_server_answers_a_bad_frame_then_serves_the_next_request(name):
    bad, code = E2E_CASES[name]
    process, client = await start_stdio()
    try:
        await client.send(bad)
        await client.send(frame(initialize(2)))
        readable_id = None if name == "body JSON, not an object" else 1
        first = await client.response(readable_id)
        if code is None:
            assert "capabilities" in first["result"]
        else:
            assert first["error"]["code"] == code, first
        assert "capabilities" in (await client.response(2))["result"]
        await shut_down(process, client)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_server_limit_from_the_environment():
    process, client = await start_stdio(VQLSP_MAX_MESSAGE_BYTES="100")
    try:
        await client.send(frame(initialize(1)))  # ~90 bytes of padding over the limit
        assert (await client.response(1))["error"]["code"] == INVALID_REQUEST
        await shut_down(process, client)  # a small message still goes through
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_requests_after_shutdown_are_invalid():
    process, client = await start_stdio()
    try:
        await client.send(frame(initialize(1)))
        assert "capabilities" in (await client.response(1))["result"]
        await client.request(2, "shutdown")
        assert (await client.response(2))["result"] is None
        await client.request(3, "textDocument/hover", HOVER["params"])
        hover = await client.response(3)
        assert hover["error"]["code"] == INVALID_REQUEST and "shut down" in hover["error"]["message"]
        # A notification is ignored; another request, a second shutdown too, is answered.
        await client.send(frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": "file:///late.txt", "languageId": "plaintext", "version": 1, "text": "Late."}}}))
        await client.request(4, "shutdown")
        assert (await client.response(4))["error"]["code"] == INVALID_REQUEST
        assert [m for m in client.received if "method" not in m] == []  # nothing answered the notification
        await exit_cleanly(process, client)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_tcp_gets_the_same_framing():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        *SERVER, "--tcp", f"127.0.0.1:{port}", "--log-level", "info", env=SERVER_ENV, stderr=asyncio.subprocess.PIPE
    )
    try:
        while b"Serving on" not in (line := await asyncio.wait_for(process.stderr.readline(), WAIT_S)):
            assert line, "the server exited before listening"
        client = RawClient(*await asyncio.open_connection("127.0.0.1", port))
        await client.send(frame(initialize(1), delta=-3) + frame(initialize(2), header=b"CONTENT-LENGTH"))
        assert (await client.response(1))["error"]["code"] == PARSE_ERROR
        assert "capabilities" in (await client.response(2))["result"]
        await client.request(3, "shutdown")
        assert (await client.response(3))["result"] is None
        await client.send(frame({"jsonrpc": "2.0", "method": "exit"}))
        assert await asyncio.wait_for(process.wait(), WAIT_S) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_writer_writes_a_large_message_whole_to_a_non_blocking_pipe():
    """A pipe takes 64 KiB; the rest of a 3 MiB message must wait for the reader, not be lost
    (pygls's StdoutWriter over a non-blocking descriptor raises BlockingIOError part way)."""

    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    message = frame({"jsonrpc": "2.0", "method": "m", "params": {"text": "x" * (3 << 20)}})
    received = bytearray()

    def slow_reader():
        while len(received) < 2 * len(message):
            time.sleep(0.001)
            chunk = os.read(read_fd, 1 << 14)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    writer = MessageWriter(write_fd)
    threads = [threading.Thread(target=writer.write, args=(message,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    reader.join()
    assert bytes(received) == message * 2  # both whole, one after the other


def test_writing_never_waits_for_the_client_to_read():
    """The event loop writes; a client that reads late (parsing a long push as it reads it)
    must not hold it: ``write`` queues, and the messages arrive whole and in order."""
    read_fd, write_fd = os.pipe()
    writer = MessageWriter(write_fd)
    messages = [frame({"jsonrpc": "2.0", "method": "m", "params": {"n": n, "text": "x" * (1 << 20)}})
                for n in range(3)]
    writing = threading.Thread(target=lambda: [writer.write(m) for m in messages])
    writing.start()
    writing.join(10)  # (nobody reads the pipe yet: a blocking write would still be in it)
    assert not writing.is_alive()
    received = bytearray()
    while len(received) < sum(map(len, messages)):
        received.extend(os.read(read_fd, 1 << 16))
    assert bytes(received) == b"".join(messages)
    writer.close()
    os.close(read_fd)


def test_stray_output_goes_to_stderr_not_into_the_protocol_stream():
    code = (
        "import os\n"
        "from vqlsp.lsp.framing import MessageWriter, protocol_stdout\n"
        "writer = MessageWriter(protocol_stdout())\n"
        "print('a stray print')\n"
        "os.write(1, b'native output\\n')\n"
        "writer.write(b'Content-Length: 2\\r\\n\\r\\n{}')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=True)
    assert done.stdout == b"Content-Length: 2\r\n\r\n{}"
    assert b"a stray print" in done.stderr and b"native output" in done.stderr
