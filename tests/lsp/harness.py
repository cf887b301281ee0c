"""End-to-end harness: a tiny checkpoint, and clients that drive the real server over stdio.

The checkpoint is a random 2-layer Llama-form model with both heads and a small
byte-level BPE ``tokenizer.json`` trained here, so the server loads in well
under a second. Its span head is biased towards ``formal`` (p ~ 0.98) so that
diagnostics appear at the default threshold and vanish at a higher one.

``Editor`` is the client side of a session: it keeps each document's text the
way an editor does, turns code-point edits into LSP ranges in the negotiated
encoding (its own arithmetic, not the server's), and waits for notifications
with timeouts, never by sleeping.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

SERVER = [sys.executable, "-m", "vqlsp", "serve"]
SERVER_ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "VQLSP_CHECK_TOKENS": "1"}
WAIT_S = 30.0
DOC_LABELS = ["alpha", "beta", "gamma"]
SPAN_LABELS = ["formal", "casual"]

PROSE = (
    "The committee met on Tuesday. It approved the budget for next year!\n\n"
    "Members asked whether the plan was fair? Dr. Smith said it was.\n"
    "Café owners, naïve voters and 日本語 readers all wrote letters 👍🏽.\n"
)


# -- the tiny checkpoint --------------------------------------------------------------------


def _train_tokenizer(path: Path) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    corpus = [PROSE * 3, "the of and to in a is that for it as was with be by on not this are or from at " * 20]
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.save(str(path))
    return tokenizer.get_vocab_size()


def build_tiny_checkpoint(directory: Path) -> Path:
    import torch

    from vqlsp.model.checkpoint import save_checkpoint
    from vqlsp.model.config import ModelConfig
    from vqlsp.model.heads import DocumentHead, SpanHead
    from vqlsp.model.transformer import VQTransformer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = _train_tokenizer(directory / "tokenizer.json")
    torch.manual_seed(0)
    cfg = ModelConfig.tiny("llama", vocab_size=max(512, vocab), max_positions=16384)
    model = VQTransformer(cfg)
    document = DocumentHead(model.hidden_dim, DOC_LABELS)
    span = SpanHead(model.hidden_dim, SPAN_LABELS, unit="sentence")
    with torch.no_grad():
        span.linear.weight.mul_(0.01)
        span.linear.bias.copy_(torch.tensor([4.0, 0.0]))
    model.set_heads(document, span)
    save_checkpoint(model, directory)
    return directory


# -- client profiles ---------------------------------------------------------------------------

PROFILES = {
    # name: (capability profile, position encodings offered, pull diagnostics?)
    "neovim-utf8": ("neovim", ["utf-8", "utf-16", "utf-32"], True),
    "neovim-utf16": ("neovim", ["utf-16"], True),
    "vscode-utf16": ("visual_studio_code", None, False),
    "vscode-utf32": ("visual_studio_code", ["utf-32", "utf-16"], False),
}


def profile_capabilities(name: str) -> types.ClientCapabilities:
    base, encodings, pull = PROFILES[name]
    caps = copy.deepcopy(client_capabilities(base))
    if encodings is not None:
        caps.general = caps.general or types.GeneralClientCapabilities()
        caps.general.position_encodings = encodings
    assert bool(caps.text_document.diagnostic) == pull, name
    return caps


def units(text: str, encoding: str) -> int:
    """Length of ``text`` in the encoding's code units (independent of the server's codec)."""
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-16":
        return len(text.encode("utf-16-le")) // 2
    return len(text)


def position(text: str, offset: int, encoding: str) -> types.Position:
    line = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    return types.Position(line=line, character=units(text[line_start:offset], encoding))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- the test client ------------------------------------------------------------------------


OWN_FEATURES = (types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, types.WINDOW_LOG_MESSAGE, types.WINDOW_SHOW_MESSAGE)


def make_client() -> LanguageClient:
    client = LanguageClient(converter_factory=default_converter)
    features = {k: v for k, v in DEFAULT_CLIENT_FEATURES.items() if k not in OWN_FEATURES}
    register_lsp_features(client, features)
    client.classifications = []
    client.published = []
    client.resyncs = []
    client.received = asyncio.Event()

    @client.feature("vqlsp/classification")
    def on_classification(ls: LanguageClient, params: Any) -> None:
        ls.classifications.append(_plain(params))
        ls.received.set()

    @client.feature("vqlsp/resync")
    def on_resync(ls: LanguageClient, params: Any) -> None:
        ls.resyncs.append(_plain(params))
        ls.received.set()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_publish(ls: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        ls.published.append(params)
        ls.diagnostics[params.uri] = params.diagnostics
        ls.received.set()

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(ls: LanguageClient, params: types.LogMessageParams) -> None:
        ls.log_messages.append(params)
        ls.received.set()

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def on_show(ls: LanguageClient, params: types.ShowMessageParams) -> None:
        ls.messages.append(params)
        ls.received.set()

    return client


def _plain(params: Any) -> Any:
    """Custom notification params as plain JSON values (pygls may hand over attrs-like objects)."""
    if isinstance(params, dict):
        return {k: _plain(v) for k, v in params.items()}
    if isinstance(params, (list, tuple)) and not hasattr(params, "_fields"):
        return [_plain(v) for v in params]
    if hasattr(params, "_asdict"):
        return {k: _plain(v) for k, v in params._asdict().items()}
    return params


class Editor:
    """One editor session over a real server: documents, versions, waits."""

    def __init__(self, client: LanguageClient, profile: str):
        self.client = client
        self.profile = profile
        self.capabilities = profile_capabilities(profile)
        self.pull = bool(self.capabilities.text_document.diagnostic)
        self.encoding = "utf-16"
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}

    async def initialize(self, options: dict[str, Any] | None = None) -> types.InitializeResult:
        result = await self.client.initialize_session(
            types.InitializeParams(capabilities=self.capabilities, initialization_options=options)
        )
        self.encoding = str(result.capabilities.position_encoding or "utf-16")
        self.result = result
        return result

    # -- documents ------------------------------------------------------------------------

    def open(self, uri: str, text: str, language_id: str = "plaintext", version: int = 1) -> int:
        self.texts[uri], self.versions[uri] = text, version
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=version, text=text)
            )
        )
        return version

    def change(self, uri: str, edits: list[tuple[int, int, str]], version: int | None = None) -> int:
        """Apply code-point edits in order (each relative to the text after the previous one)."""
        changes = []
        text = self.texts[uri]
        for start, end, new in edits:
            changes.append(
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=position(text, start, self.encoding), end=position(text, end, self.encoding)),
                    text=new,
                )
            )
            text = text[:start] + new + text[end:]
        return self.send_changes(uri, changes, text, version)

    def send_changes(self, uri: str, changes: list, new_text: str, version: int | None = None) -> int:
        self.texts[uri] = new_text
        self.versions[uri] = version if version is not None else self.versions[uri] + 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=changes,
            )
        )
        return self.versions[uri]

    def replace_all(self, uri: str, text: str) -> int:
        return self.send_changes(uri, [types.TextDocumentContentChangeWholeDocument(text=text)], text)

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        self.texts.pop(uri, None)

    # -- waiting --------------------------------------------------------------------------

    async def until(self, predicate: Callable[[], Any], timeout: float = WAIT_S) -> Any:
        async def poll():
            while True:
                self.client.received.clear()
                if (value := predicate()) is not None and value is not False:
                    return value
                await self.client.received.wait()

        return await asyncio.wait_for(poll(), timeout)

    async def classification(self, uri: str, version: int | None = None, timeout: float = WAIT_S) -> dict:
        """The classification of ``uri`` at ``version`` (default: the last version sent)."""
        version = self.versions[uri] if version is None else version

        def found():
            for c in reversed(self.client.classifications):
                if c["uri"] == uri and c["version"] == version:
                    return c
            return None

        return await self.until(found, timeout)

    async def diagnostics(self, uri: str, version: int | None = None) -> list[types.Diagnostic]:
        """Diagnostics of ``uri`` at ``version``: pulled, or the push stamped with that version."""
        version = self.versions[uri] if version is None else version
        if self.pull:
            report = await asyncio.wait_for(
                self.client.text_document_diagnostic_async(
                    types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
                ),
                WAIT_S,
            )
            return report.items

        def found():
            for p in reversed(self.client.published):
                if p.uri == uri and p.version == version:
                    return p
            return None

        return (await self.until(found)).diagnostics

    async def stats(self, uri: str, command: str = "vqlsp.documentStats") -> dict:
        result = await asyncio.wait_for(
            self.client.workspace_execute_command_async(types.ExecuteCommandParams(command=command, arguments=[uri])),
            WAIT_S,
        )
        return _plain(result)

    async def assert_in_sync(self, uri: str) -> dict:
        """The server's text of ``uri`` equals ours (hash and token count of its current text)."""
        stats = await self.stats(uri)
        assert stats["textHash"] == sha(self.texts[uri]), "server text drifted from the client's"
        return stats


CONFIG = ClientServerConfig(server_command=SERVER, client_factory=make_client, server_env=SERVER_ENV)


@pytest_lsp.fixture(config=CONFIG)
async def lsp_client(lsp_client: LanguageClient):
    """A client connected to a fresh server subprocess (pytest-lsp starts and stops it)."""
    yield
    await lsp_client.shutdown_session()


def editor_fixture(profiles: list[str]):
    """An ``Editor`` over ``lsp_client``, parametrized over client profiles."""

    @pytest.fixture(params=profiles)
    def editor(lsp_client: LanguageClient, request) -> Editor:
        return Editor(lsp_client, request.param)

    return editor


def doc_uri(name: str) -> str:
    return f"file:///tmp/vqlsp-tests/{name}"
