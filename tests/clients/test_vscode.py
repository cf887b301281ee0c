"""The VS Code extension's own test command (`npm test` in editor-clients/vscode), under pytest.

`npm test` compiles with tsc (strict), lints, runs the unit tests (the `vscode`
module mocked), runs the smoke test against the real `vqlsp serve` from this
environment, and packages the .vsix. It needs Node >= 20 and
`npm ci --prefix editor-clients/vscode`; without them this test fails, it does
not skip. Where the test command already runs `npm test` itself, set
VQLSP_VSCODE_TESTS=separate to skip this one (a reported skip, with that reason).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO

VSCODE = REPO / "editor-clients" / "vscode"


def test_vscode_extension_npm_test(server_command):
    if os.environ.get("VQLSP_VSCODE_TESTS") == "separate":
        pytest.skip("VQLSP_VSCODE_TESTS=separate: `npm test` in editor-clients/vscode runs on its own")
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm not found: the VS Code extension tests need Node >= 20 and npm")
    if not (VSCODE / "node_modules" / ".bin" / "tsc").exists():
        pytest.fail("run `npm ci --prefix editor-clients/vscode` first")
    env = {**os.environ, "VQLSP_SERVER_COMMAND": json.dumps(server_command), "VQLSP_PYTHON": sys.executable}
    proc = subprocess.run([npm, "test"], cwd=VSCODE, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"npm test failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
