"""Which documents the server leaves alone: ``excludePatterns`` and ``maxFileLength``.

Patterns are gitignore-style (``pathspec``'s ``GitIgnoreSpec``: ``drafts/``, ``*.log``,
``**/generated/**``), matched against a file's path relative to the workspace folder that
holds it, or against its absolute path (without the leading ``/``) outside every folder.
Documents that are not files (``untitled:``) are never excluded by path.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pathspec
from pygls.uris import to_fs_path


def uri_path(uri: str) -> Path | None:
    """The local path of a ``file:`` URI (None for other schemes)."""
    if not uri.startswith("file:"):
        return None
    path = to_fs_path(uri)
    return Path(path) if path else None


class Excludes:
    """``excludePatterns`` over the workspace folders."""

    def __init__(self, patterns: tuple[str, ...], folders: list[Path]):
        self.patterns = patterns
        self.folders = sorted(folders, key=lambda f: -len(f.parts))  # innermost first

    @cached_property
    def spec(self) -> pathspec.GitIgnoreSpec:
        return pathspec.GitIgnoreSpec.from_lines(self.patterns)

    def excluded(self, uri: str) -> bool:
        if not self.patterns or (path := uri_path(uri)) is None:
            return False
        folder = next((f for f in self.folders if path.is_relative_to(f)), None)
        relative = path.relative_to(folder) if folder is not None else path.relative_to(path.anchor)
        return self.spec.match_file(relative.as_posix())


def too_long_message(name: str, limit: int) -> str:
    return (f"{name} is longer than maxFileLength ({limit:,} characters): not analysed "
            "(raise vqlsp.maxFileLength, or 0 for no limit)")
