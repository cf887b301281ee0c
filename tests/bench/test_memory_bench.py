"""``vqlsp bench memory``: a long document's structures measured in a fresh child process."""

from __future__ import annotations

from vqlsp.bench import memory_bench


def test_a_documents_structures_are_measured_and_the_servers_count_agrees():
    """The traced bytes of each structure add up to what the document holds, and ``textBytes``
    (``lsp.footprint``) is that plus the text it was opened with, within a tenth."""
    r = memory_bench.measure("prose", 200_000, seed=0, traced=True)
    assert r["chars"] == 200_000 and r["tokens"] > 10_000 and r["sections"] > 1
    assert sum(r["grown"].values()) == r["held"]
    assert r["grown"]["tokens"] > 12 * r["tokens"]  # ids, starts and ends: 4 bytes each a token
    assert r["peak_above_start"] >= r["held"]
    expected = r["held"] + r["text_str_bytes"]  # the line index keeps the text it was given
    assert abs(r["text_bytes"] - expected) <= 0.1 * expected, r
