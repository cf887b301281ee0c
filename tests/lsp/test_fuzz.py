"""A fuzzer of LSP messages and edit sequences against the real server over stdio (issue 16).

One server (the tiny test model) takes every example: hypothesis draws a script of
actions on a fresh document — edits with positions anywhere (past the line end, past
the last line, between the halves of a surrogate pair, reversed), whole-text
replacements, text with emoji, NUL and lone surrogates, hovers at any position,
requests of unknown methods, bad params, bodies that are not JSON and frames whose
``Content-Length`` lies — written as raw bytes, without waiting. Then the invariants:

* the process is alive and answers every request (a result or an error), and a
  ``vqlsp.documentStats`` after the script;
* the server's text is the client's (``textHash``): an edit the client cannot model
  (a reversed range, a position inside a character) is followed by the whole text,
  which must bring the server back whatever it did with the edit;
* no traceback on stderr.

The client's own model of an edit clamps as LSP says (past the line end: the line end;
past the last line: the document end). ``VQLSP_FUZZ_EXAMPLES`` sets the number of
examples (default 100, a CI-sized run; ``vqlsp bench soak`` is the long run).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import subprocess
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vqlsp.lsp.framing import MessageReader, Received

from .harness import PROSE, SERVER, SERVER_ENV, WAIT_S

EXAMPLES = int(os.environ.get("VQLSP_FUZZ_EXAMPLES", "100"))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def frame(body: bytes, length: bytes | None = None, header: bytes = b"Content-Length") -> bytes:
    return header + b": " + (length if length is not None else b"%d" % len(body)) + b"\r\n\r\n" + body


def encode(message: dict) -> bytes:
    return json.dumps(message).encode("utf-8")  # (lone surrogates become \\ud800 escapes)


class RawServer:
    """``vqlsp serve`` with pipes: frames out, every message in through ``MessageReader``."""

    def __init__(self, command: list[str] = SERVER, env: dict[str, str] = SERVER_ENV, cwd: str | None = None):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, cwd=cwd)
        self.inbox: queue.Queue[dict] = queue.Queue()
        self.stderr: list[str] = []
        self.responses: dict[Any, dict] = {}
        self.resyncs: list[dict] = []
        self.ids = itertools.count(1)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        reader = MessageReader()
        while chunk := self.process.stdout.read1(1 << 16):
            for event in reader.feed(chunk):
                if isinstance(event, Received):
                    self.inbox.put(event.payload)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line.decode("utf-8", "replace"))

    def write(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict) -> None:
        self.write(frame(encode(message)))

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any) -> int:
        msg_id = next(self.ids)
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id

    def response(self, msg_id: int, timeout: float = WAIT_S) -> dict:
        while msg_id not in self.responses:
            try:
                message = self.inbox.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no answer to request {msg_id} within {timeout} s "
                                     f"(alive: {self.process.poll() is None})") from None
            if "method" in message:
                if message["method"] == "vqlsp/resync":
                    self.resyncs.append(message["params"])
            elif "id" in message:
                self.responses[message["id"]] = message
        return self.responses.pop(msg_id)

    def tracebacks(self) -> list[str]:
        return [line for line in self.stderr if "Traceback" in line]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    server = RawServer()
    init = server.request("initialize", {"processId": None, "capabilities": {},
                                         "initializationOptions": {"model": str(tiny_model_dir), "debounceMs": 0}})
    assert "result" in server.response(init)
    server.notify("initialized", {})
    yield server
    done = server.request("shutdown", None)
    assert server.response(done).get("result", "error") is None
    server.notify("exit", None)
    assert server.process.wait(30) == 0, "".join(server.stderr[-20:])
    assert server.tracebacks() == []


# -- the client's model of a document ---------------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def offset_of(text: str, line: int, character: int) -> int | None:
    """The code-point offset of an LSP (UTF-16) position, clamped as LSP says; None if it
    falls between the halves of a surrogate pair."""
    lines = text.split("\n")
    if line >= len(lines):
        return len(text)
    start = sum(len(x) + 1 for x in lines[:line])
    units = 0
    for k, ch in enumerate(lines[line]):
        if units == character:
            return start + k
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > character:
            return None
    return start + len(lines[line])


# -- the scripts ---------------------------------------------------------------------------------

ALPHABET = st.sampled_from(list("abc xyz.,!?\n") + ["é", "日本", "👍🏽", "😀", "\x00", "\ud800", "\t", "  "])
TEXT = st.lists(ALPHABET, max_size=12).map("".join)
POSITION = st.tuples(st.integers(0, 8), st.integers(0, 40))

ACTIONS = st.one_of(
    st.tuples(st.just("edit"), POSITION, POSITION, TEXT),
    st.tuples(st.just("edit"), POSITION, POSITION, TEXT),  # (twice: edits are most of a session)
    st.tuples(st.just("replace"), TEXT.map(lambda t: t * 3)),
    st.tuples(st.just("hover"), POSITION),
    st.tuples(st.just("unknown request"), st.sampled_from(["vqlsp/nothing", "textDocument/nothing", "$/x"])),
    st.tuples(st.just("bad params"), st.sampled_from([
        ("textDocument/hover", {"textDocument": {"uri": 3}}),
        ("textDocument/hover", None),
        ("workspace/executeCommand", {"command": "vqlsp.documentStats", "arguments": [1, 2]}),
        ("textDocument/didChange", {"textDocument": {"version": "x"}, "contentChanges": 5}),
        ("textDocument/didOpen", {"textDocument": None}),
        ("workspace/didChangeConfiguration", {"settings": {"vqlsp": {"debounceMs": "fast", "sectionTokens": -1}}}),
    ])),
    st.tuples(st.just("bad frame"), st.sampled_from(["short", "long", "not a number", "lower case", "not json"])),
)


def bad_frame(kind: str, msg_id: int) -> bytes:
    body = encode({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/hover",
                   "params": {"textDocument": {"uri": "file:///nowhere.txt"}, "position": {"line": 0, "character": 0}}})
    return {
        "short": frame(body, b"%d" % (len(body) - 3)),
        "long": frame(body, b"%d" % (len(body) + 4)),
        "not a number": frame(body, b"12x"),
        "lower case": frame(body, header=b"content-length"),
        "not json": frame(b"{\"jsonrpc\": \"2.0\", \"id\": %d, " % msg_id),
    }[kind]


counter = itertools.count()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=os.environ.get("VQLSP_FUZZ_RANDOM") != "1")
@given(first=TEXT, script=st.lists(ACTIONS, min_size=1, max_size=15))
def test_the_server_survives_any_script(server: RawServer, first: str, script: list):
    uri = f"file:///fuzz/doc-{next(counter)}.txt"
    logged = len(server.stderr)
    text, version = PROSE[:80] + first, 1
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "plaintext", "version": 1,
                                                            "text": text}})
    requests = []

    def change(changes: list) -> None:
        nonlocal version
        version += 1
        server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": changes})

    for action in script:
        kind = action[0]
        if kind == "edit":
            (l0, c0), (l1, c1), new = action[1:]
            start, end = offset_of(text, l0, c0), offset_of(text, l1, c1)
            change([{"range": {"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}},
                     "text": new}])
            if start is None or end is None or (l0, c0) > (l1, c1) or start > end:
                change([{"text": text}])  # beyond what the client can model: the whole text again
            else:
                text = text[:start] + new + text[end:]
        elif kind == "replace":
            text = action[1]
            change([{"text": text}])
        elif kind == "hover":
            line, character = action[1]
            requests.append(server.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                                  "position": {"line": line, "character": character}}))
        elif kind == "unknown request":
            requests.append(server.request(action[1], {}))
        elif kind == "bad params":
            method, params = action[1]
            if method in ("textDocument/hover", "workspace/executeCommand"):
                requests.append(server.request(method, params))
            else:
                server.notify(method, params)
        else:
            msg_id = next(server.ids)
            server.write(bad_frame(action[1], msg_id))
            if action[1] != "not json":  # (its id may be unreadable: answered with id null)
                requests.append(msg_id)

    # (sent before waiting: a frame announcing more bytes than it has is answered once more come)
    stats_id = server.request("workspace/executeCommand", {"command": "vqlsp.documentStats", "arguments": [uri]})
    for msg_id in requests:  # every request is answered: a result or an error
        answer = server.response(msg_id)
        assert "result" in answer or "error" in answer
    stats = server.response(stats_id)
    assert "result" in stats, stats
    assert stats["result"]["textHash"] == sha(text), "the server's text is not the client's"
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert server.process.poll() is None
    assert "Traceback" not in "".join(server.stderr[logged:]), "".join(server.stderr[logged:])[-3000:]


def test_notifications_leave_nothing_behind(server: RawServer):
    """pygls keeps a future per notification its own handlers run until a response removes
    it, and a notification has none: 300 keystrokes left 300 futures (``VqlspProtocol``)."""
    uri = "file:///fuzz/many-keystrokes.txt"
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "plaintext", "version": 1,
                                                            "text": ""}})
    def stats() -> dict:
        return server.response(server.request("workspace/executeCommand",
                                              {"command": "vqlsp.documentStats", "arguments": [uri]}))["result"]

    before = stats()["requestsPending"]
    for version in range(2, 302):
        server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [
            {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "a"}]})
    after = stats()
    assert after["textHash"] == sha("a" * 300)
    assert after["requestsPending"] == before  # (whatever else is pending, e.g. the stats request itself)
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
