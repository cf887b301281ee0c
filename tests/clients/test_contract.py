"""The VS Code extension's contributed setting defaults are the server's own option defaults."""

from __future__ import annotations

import dataclasses
import json

from vqlsp.lsp.options import Options, camel_to_snake

from .conftest import REPO

CLIENT_ONLY = {"serverCommand", "pythonPath", "trace.server"}


def server_defaults() -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in dataclasses.asdict(Options()).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = list(value) if isinstance(value, tuple) else value
    return flat


def test_vscode_setting_defaults_equal_server_defaults():
    package = json.loads((REPO / "editor-clients" / "vscode" / "package.json").read_text())
    properties = package["contributes"]["configuration"]["properties"]
    client = {
        ".".join(camel_to_snake(part) for part in name.removeprefix("vqlsp.").split(".")): spec["default"]
        for name, spec in properties.items()
        if name.removeprefix("vqlsp.") not in CLIENT_ONLY
    }
    assert client == server_defaults()
