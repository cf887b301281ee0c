"""The ACM stages end to end on a tiny VQ model and made-up data (seconds), and resumption."""

from __future__ import annotations

import json

import torch

from vqlsp.model.acm import AcmMlp, acm_modules
from vqlsp.model.checkpoint import load_checkpoint
from vqlsp.train.acm import AcmTrainConfig, capture, gate_labels
from vqlsp.train.acm_pipeline import run_acm_pipeline

from .test_pipeline import made_up_tasks, run, tiny_config


def tiny_acm_config(**overrides) -> AcmTrainConfig:
    base = dict(learners=4, capture_windows=6, window_tokens=16, distil_steps=6, distil_rows=32, gate_steps=20,
                e2e_steps=4, e2e_windows=2, e2e_task_docs=2, checkpoint_every=2, thresholds=(0.3, 1.0), target_means=(2.0,))
    return AcmTrainConfig(**{**base, **overrides})


def run_acm(out, cfg):
    data = made_up_tasks()
    return run_acm_pipeline(out, out / "model", cfg, data=data, text_ids=list(data.doc_ids["train"]),
                            progress=False, log=lambda s: None)


def test_acm_stages_end_to_end(tmp_path):
    run(tmp_path, tiny_config())  # the VQ recipe first: its out/model is where ACM starts
    report = run_acm(tmp_path, tiny_acm_config())
    # stage 1 lowers the error of running fewer learners; all of them start as the MLP itself
    before, after = report["distil"]["prefix_errors_before"], report["distil"]["prefix_errors_after"]
    assert all(layer[-1] < 1e-4 for layer in before)
    assert sum(layer[0] for layer in after) < sum(layer[0] for layer in before)
    assert len(report["gates"]["label_mean_learners"]) == 3
    history = report["end_to_end"]["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert all({"budget", "diversity", "task", "hidden"} <= set(h) for h in history)
    ev = json.loads((tmp_path / "acm-eval.json").read_text())
    low, high, target = ev["budgets"]
    assert 1.0 <= low["mean_learners"] <= high["mean_learners"] == 4.0
    assert target["target_mean"] == 2.0 and 1.0 <= target["mean_learners"] <= 4.0
    assert {"document", "span"} <= set(ev["plain"]) and {"document", "span"} <= set(low)
    # the deliverable loads on its own with ACM MLPs in every layer that runs
    model = load_checkpoint(tmp_path / "acm-model")
    assert model.cfg.acm.learners == 4 and len(acm_modules(model)) == 3
    # re-running finds every stage done
    assert run_acm(tmp_path, tiny_acm_config())["eval"] == report["eval"]


def test_end_to_end_stage_resumes_exactly(tmp_path):
    run(tmp_path, tiny_config())
    once = tmp_path / "once"
    once.mkdir()
    (once / "model").symlink_to(tmp_path / "model")
    run_acm(once, tiny_acm_config())
    twice = tmp_path / "twice"
    twice.mkdir()
    (twice / "model").symlink_to(tmp_path / "model")
    run_acm(twice, tiny_acm_config(e2e_steps=2, thresholds=(1.0,), target_means=()))
    for stage in ("acm-model", "acm-eval.json", "acm.json"):  # forget the end, keep the state after step 2
        path = twice / stage
        if path.is_dir():
            for f in path.iterdir():
                f.unlink()
            path.rmdir()
        else:
            path.unlink()
    run_acm(twice, tiny_acm_config())
    a, b = (load_checkpoint(d / "acm-model").state_dict() for d in (once, twice))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gate_labels_are_the_fewest_learners_within_tolerance():
    torch.manual_seed(0)
    from vqlsp.model.config import ACMConfig, ModelConfig
    from vqlsp.model.layers import Mlp

    cfg = ModelConfig.tiny("opt", acm=ACMConfig(learners=4, layers=1))
    acm = AcmMlp.from_mlp(Mlp(cfg), cfg)
    x = torch.randn(50, cfg.d_model)
    y = acm.prefixes(x)[:, -1]
    with torch.no_grad():
        errors = (acm.prefixes(x) - y[:, None]).norm(dim=-1) / y.norm(dim=-1, keepdim=True)
        labels = gate_labels(acm, x, y, 0.3)
    for e, k in zip(errors, labels.tolist()):
        assert e[k] <= 0.3 and all(e[j] > 0.3 for j in range(k))
    assert int(gate_labels(acm, x, y, 0.0).max()) <= 3  # the last prefix is the MLP itself


def test_capture_records_every_row_of_each_mlp():
    from .test_pipeline import tiny_base

    model = tiny_base()
    windows = torch.randint(0, 200, (3, 10))
    rows = capture(model, windows, 2, batch=2)
    assert [t.shape for t in rows.inputs] == [torch.Size([30, 64])] * 2
    with torch.no_grad():
        assert torch.allclose(model.blocks[0].mlp(rows.inputs[0]), rows.outputs[0], atol=1e-6)
