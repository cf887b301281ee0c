"""Per-label diagnostics, excludePatterns and maxFileLength as options (no server), the
exclude matcher, and the workspace ignore file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqlsp.lsp.ignore_file import IgnoreFileError, WorkspaceIgnores, add_label, read_labels
from vqlsp.lsp.options import DiagnosticOptions, LabelRule, Options, changed_fields, parse_options
from vqlsp.lsp.scope import Excludes


def test_label_rules_parse_and_resolve():
    options, problems = parse_options({"excludePatterns": ["drafts/", "*.log"], "maxFileLength": 1000, "diagnostics": {
        "severity": "off", "labels": {"negative": {"severity": "warning"}, "sentiment/negative": {"threshold": 0.95},
                                      "positive": {"threshold": None}}}})
    assert problems == []
    assert options.exclude_patterns == ("drafts/", "*.log") and options.max_file_length == 1000
    d = options.diagnostics
    assert d.labels == {"negative": LabelRule(severity="warning"), "sentiment/negative": LabelRule(threshold=0.95),
                        "positive": LabelRule()}
    assert d.rule("negative") == (0.8, "warning")  # the bare label
    assert d.rule("negative", head="sentiment") == (0.95, "off")  # the head-scoped key wins...
    assert d.rule("negative", head="topic") == (0.8, "warning")  # ...for its head only
    assert d.rule("positive") == (0.8, "off")  # the general fields
    assert changed_fields(Options(), options) >= {"diagnostics.labels", "diagnostics.severity", "exclude_patterns"}


@pytest.mark.parametrize("raw, needle", [
    ({"diagnostics": {"labels": []}}, "must be an object of label"),
    ({"diagnostics": {"labels": {"negative": "warning"}}}, "label 'negative': must be an object"),
    ({"diagnostics": {"labels": {"negative": {"severity": "loud"}}}}, "'loud' is not one of"),
    ({"diagnostics": {"labels": {"negative": {"colour": 1}}}}, "unknown option 'negative.colour'"),
    ({"excludePatterns": "drafts/"}, "list of glob patterns"),
    ({"maxFileLength": -1}, "outside"),
])
def test_bad_label_and_scope_options_fall_back_to_defaults(raw, needle):
    options, problems = parse_options(raw)
    assert len(problems) == 1 and needle in problems[0], problems
    assert options == Options()


def test_defaults():
    assert DiagnosticOptions().labels == {} and Options().exclude_patterns == ()
    assert Options().max_file_length == 4_000_000


def test_excludes_match_relative_to_the_innermost_folder(tmp_path):
    root, inner = tmp_path / "ws", tmp_path / "ws" / "sub"
    excludes = Excludes(("drafts/", "*.log", "/top.md"), [root, inner])
    uri = lambda p: (tmp_path / p).as_uri()  # noqa: E731
    assert excludes.excluded(uri("ws/drafts/a.md")) and excludes.excluded(uri("ws/x/drafts/a.md"))
    assert excludes.excluded(uri("ws/notes.log")) and excludes.excluded(uri("ws/top.md"))
    assert excludes.excluded(uri("ws/sub/top.md"))  # anchored at the innermost folder holding it
    assert not excludes.excluded(uri("ws/x/top.md")) and not excludes.excluded(uri("ws/notes.md"))
    assert not excludes.excluded("untitled:Untitled-1")
    assert Excludes(("*.md",), []).excluded(uri("elsewhere/a.md"))  # outside every folder: the absolute path
    assert not Excludes((), [root]).excluded(uri("ws/a.md"))


def test_workspace_ignore_file(tmp_path: Path):
    assert read_labels(tmp_path) == frozenset()
    (tmp_path / ".vqlsp.json").write_text('{"keep": true, "ignoreLabels": ["a"]}')
    add_label(tmp_path, "b")
    add_label(tmp_path, "b")
    assert json.loads((tmp_path / ".vqlsp.json").read_text()) == {"keep": True, "ignoreLabels": ["a", "b"]}
    ignores = WorkspaceIgnores()
    assert ignores.load([tmp_path]) == []
    assert ignores.labels_for(tmp_path / "x" / "y.md") == {"a", "b"} and ignores.labels_for(Path("/else")) == set()
    (tmp_path / ".vqlsp.json").write_text('{"ignoreLabels": "a"}')
    [problem] = ignores.load([tmp_path])
    assert "must be a list" in problem and ignores.labels_for(tmp_path / "y.md") == set()
    with pytest.raises(IgnoreFileError):
        add_label(tmp_path, "c")
