"""pygls's LSP protocol with the changes vqlsp needs.

* Text synchronisation is vqlsp's own (``documents.DocumentStore``): the
  built-in didOpen/didChange/didClose handlers only forward to ours instead of
  also keeping pygls's workspace copy, which would re-split every line per
  keystroke and, on a bad range, fail before our handler could resync.
* A message whose params do not deserialize (a negative line, a string where a
  number belongs) is answered instead of dropped: a request gets an
  ``InvalidParams`` error response (pygls would leave it unanswered), a lost
  text change desyncs its document (see ``documents``).
* ``diagnosticProvider`` is advertised only to clients that can pull
  diagnostics; the others get pushed ones (never both to one client).
* Messages arrive through ``receive`` from ``framing``'s reader; a frame it
  rejected is answered there (see ``framing`` for which get a response, and why
  some carry ``"id": null``).
* A request after ``shutdown`` gets an ``InvalidRequest`` error, as LSP 3.17
  ("Shutdown Request") asks; pygls would drop it. Notifications other than
  ``exit`` are still ignored, and ``exit`` still exits.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import sys
from dataclasses import dataclass
from typing import Any

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

from cattrs import transform_error
from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
)
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import RPCRequest
from pygls.protocol.language_server import lsp_method

from .framing import Event, Received, Rejected

log = logging.getLogger(__name__)


class _Dropped:
    """Stands for a message that could not be deserialized (already answered)."""

    jsonrpc = None


DROPPED = _Dropped()


@dataclass(frozen=True)
class JsonText:
    """A request's result that is JSON text already (UTF-8 pieces, to be joined): sent as it
    is (``VqlspProtocol._send_response``), not converted and encoded again."""

    pieces: list[bytes]


def client_pulls_diagnostics(capabilities: types.ClientCapabilities | None) -> bool:
    return bool(capabilities and capabilities.text_document and capabilities.text_document.diagnostic)


class ClientErrorsWithoutTraceback(logging.Filter):
    """pygls logs every error it answers with its traceback, at ERROR. For errors the client
    caused (a message whose params do not deserialize, which ``VqlspProtocol`` reports in one
    line of its own; an LSP error a handler raised on purpose) a traceback in the log reads as
    a crash: those become one WARNING line. Internal errors keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Unable to deserialize message"):
            record.msg, record.args = "Unable to deserialize a message (reported below)", ()  # (args: a traceback)
        else:
            error = record.exc_info[1] if record.exc_info else None
            if not isinstance(error, JsonRpcException) or isinstance(error, JsonRpcInternalError):
                return True
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = f"{record.getMessage()}: {str(error).splitlines()[0] if str(error) else ''}", ()
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_CLIENT_ERRORS = ClientErrorsWithoutTraceback()


class VqlspProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        logging.getLogger("pygls.protocol.json_rpc").addFilter(_CLIENT_ERRORS)  # (once: a filter is a set member)

    def notify_json_text(self, method: str, params: list[bytes]) -> None:
        """A notification whose params are JSON text already (in pieces, UTF-8), framed as
        pygls frames a message (``_send_data``) but neither converted nor encoded again: for
        payloads sent often and large, a long document's span diagnostics
        (``diagnostics.publish_diagnostics_json``). pygls's own path would unstructure every
        value with its converter (cattrs walks the whole tree: 60 ms a push of 4,000
        diagnostics) and then encode it."""
        self._write_json_text(method, [f'{{"jsonrpc":"2.0","method":{json.dumps(method)},"params":'.encode(), *params, b"}"])

    def _send_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        """pygls's response, but a ``JsonText`` result (a pull's diagnostics report) is sent
        as the JSON text it is, like ``notify_json_text``."""
        if error is not None or not isinstance(result, JsonText):
            super()._send_response(msg_id, result, error)
            return
        self._result_types.pop(msg_id, None)
        head = f'{{"jsonrpc":"2.0","id":{json.dumps(msg_id)},"result":'.encode()
        self._write_json_text(f"the response to request {msg_id}", [head, *result.pieces, b"}"])

    def _write_json_text(self, what: str, pieces: list[bytes]) -> None:
        """Frame and write one message given as pieces of JSON text."""
        if self.writer is None:
            log.error("cannot send %s: no transport", what)
            return
        if self._include_headers:
            length = sum(len(piece) for piece in pieces)
            header = f"Content-Length: {length}\r\nContent-Type: {self.CONTENT_TYPE}; charset={self.CHARSET}\r\n\r\n"
            pieces.insert(0, header.encode("ascii"))
        try:
            written = self.writer.write(b"".join(pieces))  # one write: the frame stays whole
            if inspect.isawaitable(written):
                asyncio.ensure_future(written)
        except BrokenPipeError:
            log.exception("cannot send %s: the client closed the connection", what)
            raise
        except Exception as error:  # as pygls: a transport failure is reported, not raised
            log.exception("cannot send %s", what)
            self._server._report_server_error(error, JsonRpcInternalError)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):
        result = yield from super().lsp_initialize(params)
        if not client_pulls_diagnostics(params.capabilities):
            result.capabilities.diagnostic_provider = None
        return result

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None

    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None):
        """pygls files every handler's future under ``msg_id`` (for ``$/cancelRequest``) and
        removes it only when it answers a request: the future of a notification's handler, and
        of each user handler a built-in one hands over to (under a fresh id), stayed for ever,
        about 700 bytes per keystroke. Remove each once it is done (a done future cannot be
        cancelled anyway)."""
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(lambda done: self._forget_future(msg_id, done))

    def _forget_future(self, msg_id: Any, future: Any) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if not isinstance(data, dict) or "jsonrpc" not in data:
                raise
            self._malformed(data, exc)
            return DROPPED

    def receive(self, event: Event) -> None:
        """One message (or rejected frame) from the client, in order of arrival."""
        if isinstance(event, Received):
            self.handle_message(self.structure_message(event.payload))
        else:
            self._rejected(event)

    def handle_message(self, message):
        if message is DROPPED:
            return
        if self._shutdown and isinstance(message, RPCRequest):
            error = JsonRpcInvalidRequest(f"{message.method}: the server has been shut down; only exit is accepted")
            self._send_response(message.id, error=error.to_response_error())
            return
        super().handle_message(message)

    def _rejected(self, bad: Rejected) -> None:
        log.warning("rejected a frame (%s): %s", bad.method or "method unreadable", bad.reason)
        if bad.answer:  # built by hand: pygls's converter would leave out "id": null
            self._send_data({"jsonrpc": "2.0", "id": bad.id, "error": {"code": bad.code, "message": bad.reason}})
        handler = getattr(self._server, "malformed_message", None)
        if handler is not None:
            handler(bad.method or "unreadable", bad.params, bad.reason)

    def _malformed(self, data: dict[str, Any], exc: JsonRpcException) -> None:
        method = data.get("method", "")
        detail = _describe(exc)
        log.warning("malformed %s message: %s", method or "response", detail)
        if "id" in data and method:
            error = JsonRpcInvalidParams(f"invalid params for {method}: {detail}")
            self._send_response(data["id"], error=error.to_response_error())
        handler = getattr(self._server, "malformed_message", None)
        if handler is not None:
            handler(method, data.get("params"), detail)


def _describe(exc: JsonRpcException) -> str:
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        return "; ".join(transform_error(cause))
    return f"{cause or exc}".splitlines()[0]
