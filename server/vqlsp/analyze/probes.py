"""Early exit: a cheap linear probe per layer, and the first layer at which one is sure.

For a task (BBC topic from mean-pooled document states, sentence sentiment from
mean-pooled span states) one multinomial logistic regression is fitted per
layer on the validation split (``train.heads.fit_logistic``: half of it to fit,
the other half to pick the L2 strength). An example *exits* at the first layer
whose probe's top probability reaches ``threshold``, and the last layer
otherwise. The threshold is the lowest of ``THRESHOLDS`` at which the exited
predictions on the held-out half are within ``tolerance`` of the last layer's
probe accuracy: as early as the probes allow without losing accuracy.

The exit layer is the early-exit meter of an example: how many layers it needed.

Fitted probes carry a ``key`` (``probe_key``): a hash of the checkpoint's config
and weights, the validation cap and ``PROBES_VERSION``. Cached probes whose key
differs are stale (another model, another cap, another fitting) and are refitted.
The default model's probes, fitted on the whole validation splits, ship in
``default_probes/`` so that ``vqlsp analyze FILE`` never fits them on first use.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..train.heads import fit_logistic


@contextmanager
def one_thread():
    """Fit on one torch thread: L-BFGS on a few hundred examples is many tiny ops, which extra
    threads only slow down (measured 22 s -> 5 s a fit on the loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


PROBES_VERSION = 2  # bump when fitting changes: probes cached by another version are refitted
SHIPPED_DIR = Path(__file__).with_name("default_probes")  # the default model's probes (whole validation splits)


def probe_key(checkpoint: Path, cap: int | None) -> str:
    """What cached probes must have been fitted on: this checkpoint directory's config and
    weights, ``cap`` validation examples per task (None: all), this ``PROBES_VERSION``."""
    h = hashlib.sha256(f"vqlsp probes v{PROBES_VERSION} cap={cap if cap else 'all'}".encode())
    for name in ("config.json", "model.safetensors"):
        path = checkpoint / name
        h.update(name.encode() + (path.read_bytes() if path.is_file() else b"<none>"))
    return h.hexdigest()[:16]


THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99)


@dataclass
class ExitProbes:
    task: str
    labels: list[str]
    layers: list[int]  # the depths the probes read, ascending
    weight: torch.Tensor  # (L, C, D) over raw pooled states
    bias: torch.Tensor  # (L, C)
    threshold: float
    fit: dict  # how it was fitted: examples, per-layer held-out accuracy, the threshold's accuracy
    key: str = ""  # ``probe_key`` of the model and cap it was fitted on ("" when not known)

    def probabilities(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        """{depth: (N, D)} pooled states -> (L, N, C) probabilities per layer."""
        x = torch.stack([features[d].float() for d in self.layers])  # (L, N, D)
        return torch.softmax(x @ self.weight.transpose(1, 2) + self.bias.unsqueeze(1), -1)

    def exit(self, features: dict[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each example's exit depth (N,) and its prediction there (N,)."""
        return exit_at(self.probabilities(features), self.threshold, self.layers)

    def save(self, path: Path) -> None:
        meta = {"task": self.task, "labels": self.labels, "layers": self.layers,
                "threshold": self.threshold, "fit": self.fit, "key": self.key}
        save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()}, str(path),
                  metadata={"probes": json.dumps(meta)})

    @classmethod
    def load(cls, path: Path) -> ExitProbes:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()["probes"])
        tensors = load_file(str(path))
        return cls(meta["task"], meta["labels"], meta["layers"], tensors["weight"], tensors["bias"],
                   meta["threshold"], meta["fit"], meta.get("key", ""))


def exit_at(probs: torch.Tensor, threshold: float, layers: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, N, C) probabilities -> the first depth whose top probability reaches ``threshold``
    (the last depth when none does), and the prediction at that depth."""
    sure = probs.max(-1).values >= threshold  # (L, N)
    sure[-1] = True
    index = sure.float().argmax(0)  # first True per example
    depth = torch.tensor(layers)[index]
    pred = probs.argmax(-1).gather(0, index.unsqueeze(0))[0]
    return depth, pred


def fit_exit_probes(
    task: str, labels: list[str], features: dict[int, torch.Tensor], targets: torch.Tensor,
    *, tolerance: float = 0.01, seed: int = 0,
) -> ExitProbes:
    """Per-layer probes on validation features {depth: (N, D)} with labels (N,)."""
    layers = sorted(features)
    n = len(targets)
    if n < 4 or len(set(targets.tolist())) < 2:
        raise ValueError(f"{task}: too few validation examples ({n}) to fit early-exit probes")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    fit_idx, held = perm[: n // 2], perm[n // 2 :]
    weights, biases, accs = [], [], []
    for d in layers:
        x = features[d].float()
        with one_thread():
            lin = fit_logistic(x[fit_idx], targets[fit_idx], x[held], targets[held], len(labels))
        weights.append(lin.weight)
        biases.append(lin.bias)
        accs.append(lin.val_acc)
    probes = ExitProbes(task, labels, layers, torch.stack(weights), torch.stack(biases), THRESHOLDS[-1], {})
    probs = probes.probabilities({d: features[d][held] for d in layers})
    last_acc = accs[-1]
    chosen = None
    by_threshold = {}
    for threshold in THRESHOLDS:
        depth, pred = exit_at(probs, threshold, layers)
        acc = (pred == targets[held]).float().mean().item()
        by_threshold[str(threshold)] = {"accuracy": acc, "mean_exit": depth.float().mean().item()}
        if chosen is None and acc >= last_acc - tolerance:
            chosen = threshold
    probes.threshold = chosen if chosen is not None else THRESHOLDS[-1]
    probes.fit = {
        "examples": n, "fitted_on": len(fit_idx), "held_out": len(held), "tolerance": tolerance,
        "held_out_accuracy_by_layer": dict(zip(map(str, layers), accs)), "by_threshold": by_threshold,
    }
    return probes


TASKS = ("document", "span")


def fit_task_probes(
    model, tokenizer, *, cap: int | None = None, seed: int = 0, key: str = "", progress: bool = False,
) -> dict[str, ExitProbes]:
    """Probes for both tasks of the default heads, on their validation splits (at most ``cap``
    articles and ``cap`` snippets each; None: the whole splits), marked with ``key``. One
    batched forward per example reads every depth's pooled state (``features``)."""
    from ..train.sentiment import LABELS as SENTIMENT_LABELS
    from ..train.tasks import DataScale, load_tasks
    from .features import document_pass, span_pass

    data = load_tasks(tokenizer, DataScale(eval_cap=cap, seed=seed), splits=("validation",))
    docs = document_pass(model, data.doc_ids["validation"], progress=progress, desc="validation articles")
    spans, span_labels, _ = span_pass(model, data.span_docs["validation"], progress=progress,
                                      desc="validation snippet documents")
    probes = {
        "document": fit_exit_probes("document", data.doc_labels, docs.stacked(), data.doc_targets["validation"],
                                    seed=seed),
        "span": fit_exit_probes("span", SENTIMENT_LABELS, spans.stacked(), span_labels, seed=seed),
    }
    for p in probes.values():
        p.key = key
    return probes


def save_probes(probes: dict[str, ExitProbes], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for task, p in probes.items():
        p.save(directory / f"{task}.safetensors")


def load_probes(directory: Path, key: str | None = None) -> dict[str, ExitProbes] | None:
    """Both tasks' probes from ``directory`` (None when any is missing, or, given ``key``, when
    any was fitted for another model or cap: stale)."""
    paths = {task: directory / f"{task}.safetensors" for task in TASKS}
    if not all(p.is_file() for p in paths.values()):
        return None
    probes = {task: ExitProbes.load(p) for task, p in paths.items()}
    if key is not None and any(p.key != key for p in probes.values()):
        return None
    return probes


def cached_probes(model, tokenizer, checkpoint: Path, *, cap: int | None = None, seed: int = 0,
                  progress: bool = False) -> dict[str, ExitProbes]:
    """This model's probes: the shipped ones, else the user cache's, when their key matches;
    else fitted on validation (slow: one pass over the splits) and cached."""
    from ..model.base_weights import cache_dir

    key = probe_key(checkpoint, cap)
    found = load_probes(SHIPPED_DIR, key)
    if found is None:
        directory = cache_dir() / "analyze" / f"probes-{key}"
        found = load_probes(directory, key)
        if found is None:
            print(f"fitting early-exit probes on {f'{cap} validation examples per task' if cap else 'the whole'}"
                  f" validation splits (once; cached in {directory})", flush=True)
            found = fit_task_probes(model, tokenizer, cap=cap, seed=seed, key=key, progress=progress)
            save_probes(found, directory)
    return found
