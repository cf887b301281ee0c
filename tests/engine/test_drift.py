"""Accumulator drift: 2,000 random single-token edits on a 512-token document stay exact.

The accumulators are float32 (see ``vqlsp.engine.attention``). After the edits
the pre-VQ attention outputs, final states and probabilities must still equal a
fresh dense forward within 1e-4 (checked every 250 edits and at the end).
"""

from __future__ import annotations

import torch

from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.engine.session import IncrementalSession

from .models import VOCAB, dense, tiny_model

TOL = 1e-4


def test_two_thousand_edits_do_not_drift():
    model = tiny_model("llama", codebook_size=4)
    gen = torch.Generator().manual_seed(11)
    ids = torch.randint(0, VOCAB, (512,), generator=gen).tolist()
    # stable positions with a bound no trace reaches: no re-index ever refreshes the state
    session = IncrementalSession(model, ids, "stable", max_drift=10**6)
    worst_attn = worst_prob = 0.0
    for step in range(1, 2001):
        kind = int(torch.randint(0, 3, (1,), generator=gen))
        at = int(torch.randint(0, len(ids), (1,), generator=gen))
        token = int(torch.randint(0, VOCAB, (1,), generator=gen))
        edit = [TokenEdit(at, at, (token,)), TokenEdit(at, at + 1), TokenEdit(at, at + 1, (token,))][kind]
        session.apply([edit])
        ids = apply_edits(ids, [edit])
        if step % 250:
            continue
        ref = dense(model, ids, session.position_ids)
        for layer in range(model.cfg.depth):
            assert torch.equal(session.codes(layer).long(), ref.codes[layer][0])
            worst_attn = max(worst_attn, (session.attention_outputs(layer) - ref.attn[layer][0]).abs().max().item())
        out = session.outputs(hidden=True)
        torch.testing.assert_close(out.hidden, ref.hidden[0], atol=TOL, rtol=0)
        probs = torch.softmax(model.document_head(ref.hidden).float()[0], -1)
        worst_prob = max(worst_prob, (out.probabilities - probs).abs().max().item())
    assert worst_attn < TOL, worst_attn
    assert worst_prob < TOL, worst_prob
    print(f"max |o - o_dense| = {worst_attn:.2e}, max |p - p_dense| = {worst_prob:.2e}")
