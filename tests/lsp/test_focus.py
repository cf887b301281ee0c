"""Builds start where the writer is, and the section they work in keeps its state (issue 13).

A long document opened with the cursor in its middle gets that section first,
then its neighbours outwards: the first keystroke there is an update, not a full
pass behind the rest of the document. The section typed in (or pointed at by a
code action) is pinned in the memory budget while the build installs
the others; one whose state was evicted gets it back as soon as the cursor
moves into it. A ``VqlspServer`` without a transport, on a fake clock, with the
tiny model (``offline.offline_server``).
"""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types

from vqlsp.analysis.worker import AnalysisWorker
from vqlsp.lsp.core import TYPING_QUIET_S

from .offline import classifications, offline_server, published

URI = "file:///focus.txt"
TEXT = "\n\n".join(f"Paragraph {i} opens here. The committee met again on day {i} and wrote it down."
                   for i in range(12)) + "\n"
SECTION_TOKENS = 16


def builds(server) -> list[int]:
    """The section ids the worker finishes building, in order (first passes and warm-ups)."""
    done: list[int] = []
    build_step = server.worker.build_step

    def recorded(job, *args, **kwargs):
        step = build_step(job, *args, **kwargs)
        if step.result is not None:
            done.append(job.section)
        return step

    server.worker.build_step = recorded
    return done


def updates(server) -> list[tuple[int, bool]]:
    """``(section id, full pass)`` of each update the worker runs, in order."""
    done: list[tuple[int, bool]] = []
    update = server.worker.update

    def recorded(job, **kwargs):
        result = update(job, **kwargs)
        done.append((job.section, result.cost.full_pass))
        return result

    server.worker.update = recorded
    return done


async def type_at(server, version: int, offset: int, text: str) -> None:
    """Insert ``text`` at code point ``offset`` and wait for that version's classification."""
    doc = server.store.get(URI)
    line = doc.text.text.count("\n", 0, offset)
    at = types.Position(line=line, character=offset - (doc.text.text.rfind("\n", 0, offset) + 1))
    server.store.change(URI, version, [types.TextDocumentContentChangePartial(
        range=types.Range(start=at, end=at), text=text)])
    server.request_update(doc, typed=True)
    await server._clock.advance(0.1)  # the scheduler's debounce
    await published(server, lambda p: p["version"] == version)


async def finish_builds(server) -> None:
    await server._clock.advance(TYPING_QUIET_S)  # builds wait for a pause in the typing
    await asyncio.wait_for(server.builders[URI], 60)


async def test_an_open_builds_the_section_at_the_cursor_first_then_outwards(tiny_model_dir):
    with offline_server(tiny_model_dir, section_tokens=SECTION_TOKENS) as server:
        order = builds(server)
        doc = server.store.open(URI, "plaintext", 1, TEXT)
        ids = [s.id for s in doc.sections.sections]
        k = len(ids) // 2
        assert len(ids) >= 8
        server.focus(doc, doc.sections.char_starts[k] + 3)  # a code action as the editor opens the file
        server.opened(doc)
        await asyncio.wait_for(server.builders[URI], 60)
        assert order[:5] == [ids[k], ids[k + 1], ids[k - 1], ids[k + 2], ids[k - 2]]
        assert sorted(order) == sorted(ids)  # every section once
        last = classifications(server)[-1]
        assert last["sectionsAnalysed"] == last["sections"] == len(ids)


async def test_the_section_typed_in_keeps_its_state_and_a_pointed_at_one_gets_it_back(tiny_model_dir):
    with offline_server(tiny_model_dir, section_tokens=SECTION_TOKENS) as server:
        doc = server.store.open(URI, "plaintext", 1, TEXT)
        # A budget that holds two or three sections' states: measured on the first section.
        probe = AnalysisWorker(server.worker.model, 1 << 30)
        probe.build_step(server.store.job(doc, 0, unit="sentence", position_policy="stable", take=False), 64)
        server.worker.set_budget(int(2.5 * probe.budget.total_bytes))
        ids = [s.id for s in doc.sections.sections]
        k = len(ids) // 2
        assert len(ids) >= 8

        # Typed in before anything is built: that section's update builds it, then the rest follow.
        updated = updates(server)
        await type_at(server, 2, doc.sections.char_starts[k] + 2, "new ")
        assert updated == [(ids[k], True)]
        await finish_builds(server)
        states = server.worker.documents[URI].sections
        assert server.worker.evictions >= len(ids) - 3  # the budget did bite
        assert states[ids[k]].analyzer is not None  # ... but not on the section typed in
        await type_at(server, 3, doc.sections.char_starts[k] + 2, "x")
        assert updated[-1] == (ids[k], False)

        # The cursor moves to a section whose state was evicted: it gets one back, in the background.
        j = 1
        assert states[ids[j]].analyzer is None
        order = builds(server)
        server.focus(doc, doc.sections.char_starts[j] + 1)
        await finish_builds(server)
        assert order == [ids[j]] and states[ids[j]].analyzer is not None
        assert server.worker.focus[URI] == ids[j] == doc.focused
        task = server.builders[URI]
        server.focus(doc, doc.sections.char_starts[j] + 5)  # still there: nothing to do
        assert server.builders[URI] is task and not doc.warm_wanted
        await type_at(server, 4, doc.sections.char_starts[j] + 1, "y")
        assert updated[-1] == (ids[j], False)


@pytest.mark.parametrize("where", ["start", "past the end"])
async def test_a_focus_before_the_tokens_or_at_the_edges_is_harmless(tiny_model_dir, where):
    with offline_server(tiny_model_dir, section_tokens=SECTION_TOKENS) as server:
        doc = server.store.open(URI, "plaintext", 1, TEXT)
        order = builds(server)
        server.focus(doc, 0 if where == "start" else len(TEXT) + 10)
        server.opened(doc)
        await asyncio.wait_for(server.builders[URI], 60)
        ids = [s.id for s in doc.sections.sections]
        assert order == (ids if where == "start" else ids[::-1])
