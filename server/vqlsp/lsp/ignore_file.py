"""Labels ignored in a whole workspace: ``.vqlsp.json`` at the root of a workspace folder.

``{"ignoreLabels": ["negative", "sentiment/positive"]}``: spans with these labels (a bare
label, or ``head/label`` for one span head's) get no diagnostics in any file of that folder.
It is a file rather than an editor setting so that it survives restarts, works the same in
every client, and can be committed with the project. The server reads it at start-up and
when the client reports a change to it (``workspace/didChangeWatchedFiles``, registered
where the client allows), and writes it when the code action "ignore this label in the
workspace" runs; other keys in it are kept.
"""

from __future__ import annotations

import json
from pathlib import Path

IGNORE_FILE = ".vqlsp.json"
KEY = "ignoreLabels"


class IgnoreFileError(ValueError):
    """A ``.vqlsp.json`` that cannot be read or written as expected."""


def read_labels(folder: Path) -> frozenset[str]:
    """The labels ``folder``'s ``.vqlsp.json`` ignores (none if there is no such file)."""
    path = folder / IGNORE_FILE
    if not path.is_file():
        return frozenset()
    data = _load(path)
    labels = data.get(KEY, [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise IgnoreFileError(f"{path}: {KEY!r} must be a list of label names")
    return frozenset(labels)


def add_label(folder: Path, label: str) -> Path:
    """Adds ``label`` to ``folder``'s ``.vqlsp.json`` (created if missing); returns its path."""
    path = folder / IGNORE_FILE
    data = _load(path) if path.is_file() else {}
    labels = data.get(KEY, [])
    if not isinstance(labels, list):
        raise IgnoreFileError(f"{path}: {KEY!r} must be a list of label names")
    if label not in labels:
        data[KEY] = [*labels, label]
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IgnoreFileError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise IgnoreFileError(f"{path}: must hold a JSON object")
    return data


class WorkspaceIgnores:
    """The workspace folders and the labels each one's ``.vqlsp.json`` ignores."""

    def __init__(self) -> None:
        self.folders: dict[Path, frozenset[str]] = {}

    def load(self, folders: list[Path]) -> list[str]:
        """(Re)reads every folder's file; returns the problems (each file's, once)."""
        problems = []
        self.folders = {}
        for folder in folders:
            try:
                self.folders[folder] = read_labels(folder)
            except IgnoreFileError as exc:
                self.folders[folder] = frozenset()
                problems.append(str(exc))
        return problems

    def folder_of(self, path: Path | None) -> Path | None:
        """The innermost workspace folder holding ``path`` (None: outside them all)."""
        if path is None:
            return None
        inside = [f for f in self.folders if path.is_relative_to(f)]
        return max(inside, key=lambda f: len(f.parts)) if inside else None

    def labels_for(self, path: Path | None) -> frozenset[str]:
        folder = self.folder_of(path)
        return self.folders.get(folder, frozenset()) if folder is not None else frozenset()

    def add(self, folder: Path, label: str) -> Path:
        written = add_label(folder, label)
        self.folders[folder] = self.folders.get(folder, frozenset()) | {label}
        return written
