"""The server writes nothing outside its cache directory (issue 16).

The real server runs from a read-only workspace with ``HOME``, ``XDG_CACHE_HOME`` and
``TMPDIR`` inside a temporary tree, and is driven through a session (open, edits,
hover, close, shutdown). Afterwards every file of the tree outside
``$XDG_CACHE_HOME/vqlsp`` is as it was. Where ``strace`` is installed the server also
runs under it, and every file it opened for writing, created, renamed or removed,
anywhere on the machine, must lie in the cache directory (or be a device). Python's
own bytecode cache is turned off (``PYTHONDONTWRITEBYTECODE``): writing ``.pyc`` next
to the sources is the interpreter's doing, and an installed package has them already.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from .harness import PROSE, SERVER, SERVER_ENV
from .test_fuzz import RawServer, sha

WRITES = re.compile(r'^\d+\s+(open|openat|creat|mkdir|mkdirat|rename|renameat2?|unlink|unlinkat|rmdir)\((.*)\)\s+=\s+(-?\d+)')


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and skip not in p.parents}


def written_paths(trace: Path) -> list[str]:
    """Paths the traced processes opened for writing, created, renamed or removed (calls that succeeded)."""
    out = []
    for line in trace.read_text(errors="replace").splitlines():
        m = WRITES.match(line)
        if m is None or int(m[3]) < 0:
            continue
        call, args = m[1], m[2]
        if call.startswith("open") and not re.search(r"O_WRONLY|O_RDWR|O_CREAT", args):
            continue
        out += re.findall(r'"([^"]*)"', args)
    return out


def test_nothing_is_written_outside_the_cache(tiny_model_dir, tmp_path):
    home, cache, tmp, workspace = (tmp_path / name for name in ("home", "cache", "tmp", "workspace"))
    for d in (home, cache, tmp, workspace):
        d.mkdir()
    (workspace / "notes.txt").write_text(PROSE)
    workspace.chmod(stat.S_IRUSR | stat.S_IXUSR)
    ours = cache / "vqlsp"
    before = snapshot(tmp_path, ours)
    env = {k: v for k, v in SERVER_ENV.items() if k != "VQLSP_CACHE"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    trace = tmp_path / "strace.log"  # (outside the snapshot's interest: written by strace, not the server)
    command = SERVER
    if shutil.which("strace"):
        command = ["strace", "-f", "-qq", "-o", str(trace), "-e",
                   "trace=open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir", *SERVER]
    try:
        server = RawServer(command=command, env=env, cwd=workspace)
        init = server.request("initialize", {
            "processId": None, "capabilities": {}, "rootUri": workspace.as_uri(),
            "initializationOptions": {"model": str(tiny_model_dir), "debounceMs": 0}})
        assert "result" in server.response(init, timeout=120)
        server.notify("initialized", {})
        uri = (workspace / "notes.txt").as_uri()
        server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "plaintext", "version": 1,
                                                                "text": PROSE}})
        server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
            {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "Edited. "}]})
        hover = server.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                      "position": {"line": 0, "character": 3}})
        stats = server.request("workspace/executeCommand", {"command": "vqlsp.documentStats", "arguments": [uri]})
        assert "result" in server.response(hover, timeout=120)
        assert server.response(stats)["result"]["textHash"] == sha("Edited. " + PROSE)
        server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        done = server.request("shutdown", None)
        assert "result" in server.response(done)
        server.notify("exit", None)
        assert server.process.wait(60) == 0
    finally:
        workspace.chmod(stat.S_IRWXU)
    after = snapshot(tmp_path, ours)
    after.pop(str(trace), None)
    assert after == before, sorted(set(after.items()) ^ set(before.items()))
    assert server.tracebacks() == []
    if shutil.which("strace"):
        outside = sorted({p for p in written_paths(trace) if not (
            p.startswith(str(ours)) or p.startswith("/dev/") or p == str(cache))})
        assert outside == [], outside


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
def test_the_trace_reader_finds_writes(tmp_path):
    log = tmp_path / "t.log"
    log.write_text(
        '12 openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3\n'
        '12 openat(AT_FDCWD, "/x/out.bin", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 4\n'
        '12 openat(AT_FDCWD, "/x/missing", O_RDWR) = -1 ENOENT (No such file or directory)\n'
        '13 mkdir("/x/dir", 0777) = 0\n'
        '13 rename("/x/a", "/x/b") = 0\n')
    assert written_paths(log) == ["/x/out.bin", "/x/dir", "/x/a", "/x/b"]
    assert os.path.exists(log)
