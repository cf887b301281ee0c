"""Memory that comes back after closes (issue 16), on the real server over stdio with the tiny model.

Driven by ``vqlsp bench soak``'s own scenarios (``reopen``, ``many``), smaller:
RSS is read once it is steady after the closes (past the server's delay before
it hands freed memory back). Bounds are loose against noise and tight against
what was measured before ``lsp.heap`` trimmed: 1,000 small documents opened and
closed gave back 0% of their growth without the trim (76% with it; tiny model,
load average 19); this test's 400 gave back 0% without it (436 -> 436 MiB) and 78%
with it (422 -> 319 MiB, baseline 290). The reopen part guards against RSS climbing
from cycle to cycle (the issue's 2 MB document: 1,282 -> 1,915 MiB with the default
model); with the tiny model it did not climb much even without the trim (311, 318,
322 MiB; with it 294, 297, 300), so it is a guard, not a reproduction.
Takes about 2.5 minutes under load (two servers' worth of sampling and waits).
"""

from __future__ import annotations

import argparse

from vqlsp.bench import soak_bench


def bench_args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    soak_bench.add_arguments(parser)
    args = parser.parse_args([])
    vars(args).update(overrides)
    return args


async def worker_state_bytes(client: soak_bench.SoakClient) -> tuple[int, int]:
    """(all documents' cached state, this probe document's), from ``vqlsp.documentStats``."""
    from lsprotocol import types

    from vqlsp.lsp.client import _plain

    uri = "file:///soak/probe.txt"
    client.open(uri, "A short probe. It has two sentences.")
    assert await client.wait_covered([uri], 120)
    stats = _plain(await client.session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="vqlsp.documentStats", arguments=[uri])))
    client.close(uri)
    return stats["total_state_bytes"], stats["state_bytes"]


async def test_closed_documents_give_their_memory_back(tiny_model_dir):
    args = bench_args(model=str(tiny_model_dir), size="200k", cycles=3, hold_s=2.0)
    client = soak_bench.SoakClient(args)
    await client.start()
    try:
        # The same large document opened and closed: RSS after each close does not climb.
        reopened = (await soak_bench.reopen(client, args))["figures"]
        after = reopened["rss_after_close_mib"]
        opened_growth = max(reopened["rss_open_peak_mib"]) - reopened["rss_baseline_mib"]
        assert after[-1] - after[0] <= max(24.0, 0.25 * opened_growth), reopened

        # 400 small documents opened (classified, or a minute passed) then closed: the server
        # keeps none of their state, and most of what RSS grew by goes back to the OS.
        many = (await soak_bench.many(client, bench_args(count=400, hold_s=60.0)))["figures"]
        total, probe = await worker_state_bytes(client)
        assert total == probe, (total, probe)
        assert many["rss_all_open_mib"] - many["rss_baseline_mib"] > 20, many  # (else the ratio is noise)
        assert many["growth_given_back_pct"] >= 40, many
    finally:
        await client.stop()
    assert client.tracebacks() == 0
