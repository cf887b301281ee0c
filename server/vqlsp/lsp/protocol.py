"""pygls's LSP protocol with three changes vqlsp needs.

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
"""

from __future__ import annotations

import logging
import sys
from typing import Any

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

from cattrs import transform_error
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

log = logging.getLogger(__name__)


class _Dropped:
    """Stands for a message that could not be deserialized (already answered)."""

    jsonrpc = None


DROPPED = _Dropped()


def client_pulls_diagnostics(capabilities: types.ClientCapabilities | None) -> bool:
    return bool(capabilities and capabilities.text_document and capabilities.text_document.diagnostic)


class VqlspProtocol(LanguageServerProtocol):
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

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if not isinstance(data, dict) or "jsonrpc" not in data:
                raise
            self._malformed(data, exc)
            return DROPPED

    def handle_message(self, message):
        if message is DROPPED:
            return
        super().handle_message(message)

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
