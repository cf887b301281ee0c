"""The VS Code extension's tests under pytest: its own `npm test`, and the extension in a real VS Code.

`npm test` compiles with tsc (strict), lints, runs the unit tests (the `vscode`
module mocked), runs the smoke test against the real `vqlsp serve` from this
environment, and packages the .vsix. It needs Node >= 20 and
`npm ci --prefix editor-clients/vscode`; without them this test fails, it does
not skip. Where the test command already runs `npm test` itself, set
VQLSP_VSCODE_TESTS=separate to skip this one (a reported skip, with that reason).

The real-VS-Code test (`npm run test:e2e`, editor-clients/vscode/test/e2e/)
installs the .vsix built from this checkout in code-server and drives the
workbench through a headless Chromium, with the real server on the default
model. scripts/setup.sh installs code-server, Chromium and playwright-core with
the dev extras; without them it fails. On failure it prints code-server's log
and the extension's output channel; its screenshots stay in the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from vqlsp.model.base_weights import cache_dir

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


def _tail(path, limit: int = 6000) -> str:
    return path.read_text(errors="replace")[-limit:] if path.is_file() else f"({path} was not written)"


@pytest.mark.real_model
def test_extension_in_real_vscode(server_command, code_server, chromium, tmp_path):
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm not found: the VS Code extension tests need Node >= 20 and npm")
    run = tmp_path / "run"
    env = {
        **os.environ,
        "VQLSP_SERVER_COMMAND": json.dumps(server_command),
        "VQLSP_CODE_SERVER": code_server,
        "VQLSP_CHROMIUM": chromium,
        "VQLSP_E2E_DIR": str(run),
        # the server inside code-server reuses the converted default weights of this user
        "VQLSP_CACHE": str(cache_dir()),
    }
    for script in ("compile", "package"):  # the .vsix of this checkout
        proc = subprocess.run([npm, "run", script], cwd=VSCODE, env=env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"npm run {script} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    proc = subprocess.run([npm, "run", "test:e2e"], cwd=VSCODE, env=env, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        channels = sorted((run / "user-data" / "logs").glob("*/exthost*/output_logging_*/*vqlsp*.log"))
        steps = re.findall(r"step failed: (.*?) :: ", proc.stdout)  # the failing step, as the e2e test names it
        pytest.fail(
            f"the real-VS-Code test failed at {f'the step {steps[0]!r}' if steps else 'the set-up'} "
            f"(screenshots in {run / 'screenshots'}):\n{proc.stdout[-8000:]}\n"
            f"{proc.stderr[-3000:]}\n--- code-server log ---\n{_tail(run / 'code-server.log')}\n"
            + "".join(f"--- output channel {c.name} ---\n{_tail(c, 4000)}\n" for c in channels)
        )
