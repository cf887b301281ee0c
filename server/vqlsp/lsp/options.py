"""Server options: nested dataclasses with a default for every field.

Clients send camelCase JSON (``initializationOptions``, the ``vqlsp`` settings
section of ``workspace/didChangeConfiguration`` or ``workspace/configuration``);
``parse_options`` converts it at the boundary. Unknown keys and invalid values
never stop the server: each becomes a problem message (logged and shown to the
user once by the server) and the field keeps its default.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import pathspec

SEVERITIES = ("error", "warning", "information", "hint", "off")  # "off": no diagnostics
POSITION_POLICIES = ("stable", "exact")
DEVICES = ("auto", "cpu", "cuda")
UNITS = ("sentence", "paragraph")
DEFAULT_LANGUAGES = ("plaintext", "markdown", "restructuredtext", "latex", "git-commit")
SECTION = "vqlsp"


@dataclass(frozen=True)
class LabelRule:
    """Diagnostics of one span label; a field left None takes ``DiagnosticOptions``' own."""

    threshold: float | None = None
    severity: str | None = None  # one of SEVERITIES ("off": this label gives no diagnostics)


@dataclass(frozen=True)
class DiagnosticOptions:
    threshold: float = 0.8  # a span gets a diagnostic when its top label's probability reaches this
    severity: str = "information"  # one of SEVERITIES
    unit: str | None = None  # "sentence" | "paragraph"; None = the span head's own training unit
    # per label: "negative" (any span head's label) or "sentiment/negative" (one head's), e.g.
    # {"negative": {"severity": "warning"}} with severity "off" above: only negative spans, as
    # warnings. The head-scoped key wins over the bare label, which wins over the fields above.
    labels: dict[str, LabelRule] = field(default_factory=dict)

    def rule(self, label: str, head: str | None = None) -> tuple[float, str]:
        """``(threshold, severity)`` for spans labelled ``label`` by span head ``head``."""
        rule = (self.labels.get(f"{head}/{label}") if head else None) or self.labels.get(label) or LabelRule()
        return (self.threshold if rule.threshold is None else rule.threshold,
                self.severity if rule.severity is None else rule.severity)

    def key(self) -> tuple:
        """A hashable summary (what cached diagnostics depend on)."""
        return (self.threshold, self.severity, self.unit, tuple(sorted(self.labels.items())))


@dataclass(frozen=True)
class Options:
    model: str | None = None  # checkpoint directory; None = the embedded default model
    # extra heads served beside the model's own (``vqlsp train-head`` output directories or
    # head.safetensors files), each fitted on this model's features
    heads: tuple[str, ...] = ()
    device: str = "auto"
    # quiet time after a keystroke before an update starts. 0: at once; keystrokes that arrive
    # while an update runs are covered by the next one (and the running one still publishes),
    # so there is nothing to gain by waiting (measured: 1k tokens, a key every 100 ms,
    # p95 112 ms at 0 vs 176 ms at 30)
    debounce_ms: float = 0.0
    position_policy: str = "stable"  # engine position ids under insertion: "stable" | "exact"
    # once a document has been quiet this long, its "stable" position ids are re-indexed to
    # exact ones (so results at rest are exact-position results; it costs about a dense pass
    # over the text after the first moved id); 0 = never
    settle_ms: float = 2000.0
    # over all open documents' cached engine states (LRU eviction); SmolLM2's exact state is
    # ~255 KiB per token, so 2 GiB holds about four 2k-token documents
    memory_budget_mb: float = 2048.0
    # documents of any length are analysed in sections of about this many tokens, cut at
    # paragraph breaks, each its own incremental state: a keystroke costs what its section's
    # update costs, whatever the document's length. 256 is the default model's training
    # window; an edit at a section's start recomputes the whole section after it (measured at
    # 4k tokens, typing mid-document: 78 ms a keystroke at 512, 36-39 ms at 256 and 128)
    section_tokens: int = 256
    languages: tuple[str, ...] = DEFAULT_LANGUAGES  # languageIds the server analyses
    # gitignore-style patterns of paths never analysed, matched against a file's path relative
    # to its workspace folder (or its absolute path outside any), e.g. ["drafts/", "*.log"]
    exclude_patterns: tuple[str, ...] = ()
    # a document longer than this (characters) is not tokenized or analysed, with one message;
    # 0 = no limit. The default leaves room for a 2 MB document (measured: about 4 s to a first
    # result, ~0.1 s a keystroke after)
    max_file_length: int = 4_000_000
    diagnostics: DiagnosticOptions = field(default_factory=DiagnosticOptions)


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def parse_options(raw: Any) -> tuple[Options, list[str]]:
    """camelCase JSON -> ``(Options, problems)``; every problem names its key.

    ``raw`` may be the options object itself or ``{"vqlsp": {...}}`` (a whole
    settings tree); ``None`` means all defaults.
    """
    problems: list[str] = []
    if raw is None:
        return Options(), problems
    if isinstance(raw, dict) and set(raw) == {SECTION}:
        raw = raw[SECTION]
        if raw is None:
            return Options(), problems
    if not isinstance(raw, dict):
        return Options(), [f"options must be an object, got {type(raw).__name__}"]
    return _build(Options, raw, "", problems), problems


def _build(cls: type, raw: dict[str, Any], prefix: str, problems: list[str]):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = camel_to_snake(key)
        where = prefix + key
        if name not in fields:
            problems.append(f"unknown option {where!r} (ignored)")
            continue
        default = _default(fields[name])
        if dataclasses.is_dataclass(default):
            if isinstance(value, dict):
                values[name] = _build(type(default), value, where + ".", problems)
            elif value is not None:
                problems.append(f"option {where!r} must be an object (using defaults)")
            continue
        if value is None and name not in NULLABLE:
            continue  # null = "use the default" for any field
        try:
            values[name] = VALIDATORS[name](value)
        except (TypeError, ValueError) as exc:
            problems.append(f"invalid option {where!r}: {exc} (using {_show(default)})")
    return cls(**values)


NULLABLE = {"model", "unit"}


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _show(value: Any) -> str:
    return "null" if value is None else repr(list(value) if isinstance(value, tuple) else value)


def _choice(choices: tuple[str, ...], nullable: bool = False):
    def check(value: Any) -> str | None:
        if value is None and nullable:
            return None
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


def _number(low: float, high: float, kind: type = float):
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{value!r} is not a number")
        if not low <= value <= high:
            raise ValueError(f"{value!r} is outside [{low}, {high}]")
        if kind is int and value != int(value):
            raise ValueError(f"{value!r} is not an integer")
        return kind(value)

    return check


def _path_or_null(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a path")
    return value


def _paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TypeError("must be a list of paths")
    return tuple(value)


def _languages(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("must be a list of languageIds")
    return tuple(value)


def _patterns(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("must be a list of glob patterns")
    try:
        pathspec.GitIgnoreSpec.from_lines(value)
    except ValueError as exc:  # pathspec's GitWildMatchPatternError
        raise ValueError(f"bad pattern: {exc}") from None
    return tuple(value)


def _labels(value: Any) -> dict[str, LabelRule]:
    """``{"negative": {"severity": "warning", "threshold": 0.9}, ...}`` -> label rules."""
    if not isinstance(value, dict):
        raise TypeError("must be an object of label -> {threshold, severity}")
    rules = {}
    for label, raw in value.items():
        if not label or not isinstance(raw, dict):
            raise TypeError(f"label {label!r}: must be an object such as {{\"severity\": \"warning\"}}")
        problems: list[str] = []
        rules[label] = _build(LabelRule, raw, f"{label}.", problems)
        if problems:
            raise ValueError(f"label {label!r}: {'; '.join(problems)}")
    return rules


VALIDATORS = {
    "model": _path_or_null,
    "heads": _paths,
    "device": _choice(DEVICES),
    "debounce_ms": _number(0, 10_000),
    "position_policy": _choice(POSITION_POLICIES),
    "settle_ms": _number(0, 3_600_000),
    "memory_budget_mb": _number(0, 1 << 20),
    "section_tokens": _number(16, 1 << 16, int),
    "languages": _languages,
    "exclude_patterns": _patterns,
    "max_file_length": _number(0, 1 << 40, int),
    "labels": _labels,
    "threshold": _number(0.0, 1.0),
    "severity": _choice(SEVERITIES),
    "unit": _choice(UNITS, nullable=True),
}


def settings_payload(settings: Any) -> dict[str, Any] | None:
    """The vqlsp options inside a ``didChangeConfiguration`` payload, or None if it has none.

    Accepts ``{"vqlsp": {...}}`` and the options object itself (recognised by at
    least one option name); a payload for other sections only is not ours.
    """
    if not isinstance(settings, dict):
        return None
    if SECTION in settings:
        return settings[SECTION] if isinstance(settings[SECTION], dict) else {}
    known = {f.name for f in dataclasses.fields(Options)}
    return settings if any(camel_to_snake(k) in known for k in settings) else None


def changed_fields(old: Options, new: Options) -> set[str]:
    """Names of the options (``diagnostics.*`` flattened) that differ."""
    out = {f.name for f in dataclasses.fields(Options) if f.name != "diagnostics" and getattr(old, f.name) != getattr(new, f.name)}
    out |= {
        f"diagnostics.{f.name}"
        for f in dataclasses.fields(DiagnosticOptions)
        if getattr(old.diagnostics, f.name) != getattr(new.diagnostics, f.name)
    }
    return out


def merge_settings(base: Any, override: Any) -> Any:
    """Deep-merge two raw (camelCase) settings objects; ``override`` wins.

    A key set to ``null`` in ``override`` wins too: it means "back to the default" (a
    ``model`` fixed with ``null`` after a bad path must not keep the bad startup value);
    only an ``override`` that is itself absent (None) keeps ``base``."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge_settings(base[key], value) if key in base and value is not None else value
        return out
    return base if override is None else override
