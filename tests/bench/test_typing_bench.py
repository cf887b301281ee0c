"""``vqlsp bench typing``: its measures on hand-made arrivals, its edit streams, and one tiny run
end to end (the real server over stdio, the default model)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vqlsp.bench.typing_bench import _whole, coverage, longest_run, summarize
from vqlsp.bench.typing_traces import SCENARIOS, make_plan, parse_size

TEXT = ("The committee met on Monday. It said the report was late.\n\n"
        "Ministers said they would answer. The opposition said little. ") * 8
SOURCE = " Meanwhile the board published a longer report on the results, with new tables."


def test_a_later_version_covers_earlier_keystrokes():
    keys = [(2, 0.0), (3, 0.1), (4, 0.2), (5, 0.3)]
    # results of 2 (at 0.05) and of 5 (at 0.5): 3 and 4 are covered by 5, never by their own
    latencies, own = coverage(keys, [(0.5, 5), (0.05, 2)])
    assert latencies == pytest.approx([50.0, 400.0, 300.0, 200.0])
    assert own == [True, False, False, True]
    assert longest_run([not o for o in own]) == 2


def test_an_older_result_arriving_later_covers_nothing_new():
    keys = [(2, 0.0), (3, 0.1)]
    latencies, own = coverage(keys, [(0.2, 3), (0.3, 2)])  # 3 first, then a late result of 2
    assert latencies == pytest.approx([200.0, 100.0])
    assert own == [True, True]


def test_a_keystroke_without_any_covering_result():
    latencies, own = coverage([(2, 0.0), (3, 0.1)], [(0.05, 2)])
    assert latencies == pytest.approx([50.0, None]) and own == [True, False]


def test_summary_ranks():
    s = summarize([float(v) for v in range(1, 101)])
    assert (s["p50"], s["p95"], s["p99"], s["max"], s["n"]) == (50.5, 95.0, 99.0, 100.0, 100)
    assert summarize([]) is None


def test_an_open_is_whole_once_every_section_is_analysed():
    assert not _whole({"analysedTokens": 900, "tokens": 3000, "sections": 3, "sectionsAnalysed": 1})
    assert _whole({"analysedTokens": 3000, "tokens": 3000, "sections": 3, "sectionsAnalysed": 3})
    assert _whole({"analysedTokens": 4096, "tokens": 9000, "truncated": True})  # a prefix-only server


def test_sizes():
    assert parse_size("4k").tokens == 4096 and parse_size("1000").tokens == 1000
    assert parse_size("2MB").bytes == 2 * 2**20 and parse_size("512KB").bytes == 512 * 2**10
    with pytest.raises(ValueError):
        parse_size("lots")


@pytest.mark.parametrize("kind", list(SCENARIOS))
def test_every_stream_applies_to_its_text(kind):
    plan = make_plan(kind, TEXT, 20, 100, 500, seed=1, source=SOURCE)
    assert plan.steps and all(b.at > a.at for a, b in zip(plan.steps, plan.steps[1:]))
    text = TEXT
    for step in plan.steps:
        for start, end, new in step.changes:  # in order, each on the text after the one before
            assert 0 <= start <= end <= len(text)
            text = text[:start] + new + text[end:]
    pauses = [s.after_pause for s in plan.steps]
    if kind == "settle":  # the first key after each pause longer than settleMs
        assert sum(pauses) >= 1 and not pauses[0]
    elif kind not in ("replace-all",):
        assert not any(pauses)
    if kind == "multicursor":
        assert all(len(s.changes) == 3 for s in plan.steps)
    if kind == "replace-all":
        assert len(plan.steps[0].changes) == TEXT.count("said")


def test_streams_are_the_same_for_a_seed():
    a = make_plan("jitter", TEXT, 30, 50, 2000, seed=3, source=SOURCE)
    b = make_plan("jitter", TEXT, 30, 50, 2000, seed=3, source=SOURCE)
    assert a == b and a.name == "jitter@50ms"


@pytest.mark.real_model
def test_bench_typing_end_to_end(tmp_path):
    out = tmp_path / "typing.json"
    result = subprocess.run(
        [sys.executable, "-m", "vqlsp", "bench", "typing", "--tokens", "128", "--scenario", "type-middle",
         "multicursor", "--interval", "150", "--keys", "6", "--settle-ms", "300", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "type-middle@150ms" in result.stdout and "final=dense" in result.stdout
    assert (tmp_path / "typing.png").stat().st_size > 0
    r = json.loads(out.read_text())
    assert r["bench"] == "typing" and r["threads"] == 1 and r["settle_ms"] == 300
    (doc,) = r["documents"]
    assert doc["size"] == "128" and doc["tokens"] == 128
    assert doc["open"]["whole_result_ms"] > 0 and doc["open"]["probe_max_ms"] is not None
    assert [s["scenario"] for s in doc["scenarios"]] == ["type-middle@150ms", "multicursor@150ms"]
    for s in doc["scenarios"]:
        assert s["keys"] == 6 and len(s["keystrokes"]) == 6
        assert s["not_covered"] == 0 and all(k[2] is not None for k in s["keystrokes"])  # every key covered
        assert set(s["latency_ms"]) == {"p50", "p95", "p99", "max", "mean", "n"} and s["latency_ms"]["n"] == 6
        assert 0 <= s["longest_uncovered_run"] <= 6 and "results_dropped" in s
        assert all(p["version"] >= 1 for _, p in s["classifications"])
        final = s["final"]
        assert final["settled"] and final["in_sync"] and final["position_drift"] == 0
        assert final["equal"] is True and final["max_abs_prob_diff"] < 1e-4
    assert doc["scenarios"][1]["changes"] == 18  # three cursors a keystroke
