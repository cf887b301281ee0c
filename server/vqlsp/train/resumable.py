"""A training pipeline's report, kept on disk after every stage.

``vqlsp train`` and its ACM stages resume where they stopped: a stage whose
checkpoint exists is skipped, and what it measured comes back from the report
file, which each stage rewrites as it finishes.
"""

from __future__ import annotations

import json
from pathlib import Path


class ResumableReport(dict):
    """The report at ``path`` (empty if there is none yet); ``save`` writes it back."""

    def __init__(self, path: Path):
        super().__init__(json.loads(path.read_text()) if path.is_file() else {})
        self.path = path

    def save(self) -> None:
        self.path.write_text(json.dumps(self, indent=1) + "\n")
