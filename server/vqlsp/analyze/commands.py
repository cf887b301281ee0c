"""``vqlsp analyze``: arguments and the two runs (one file's heat map, or the test-set suite)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


class AnalyzeError(ValueError):
    """Bad input to ``vqlsp analyze`` (no file and no --test-sets, an empty text, missing probes)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="text file: render its per-token compute (HTML and PNG heat maps)")
    p.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda (default: cpu)")
    p.add_argument("--out", default="vqlsp-analyze", help="output directory (default: ./vqlsp-analyze)")
    p.add_argument("--test-sets", action="store_true", help="run the analyses over the tasks' test sets")
    p.add_argument("--probes", help="directory holding document.safetensors and span.safetensors (early-exit "
                   "probes; default: the shipped ones for the default model, else fitted on validation once "
                   "and cached)")
    p.add_argument("--probe-cap", type=int, help="validation examples per task to fit the probes on (default: all)")
    p.add_argument("--max-edits", type=int, default=96, help="FILE: tokens edited to measure reuse (default 96)")
    p.add_argument("--section-tokens", type=int, default=256, help="FILE: tokens per section (default 256)")
    p.add_argument("--language", default="plaintext", help="FILE: markup language for sentences (default plaintext)")
    p.add_argument("--docs", type=int, default=100, help="test articles (default 100; 0: all)")
    p.add_argument("--spans", type=int, default=400, help="test sentiment snippets (default 400; 0: all)")
    p.add_argument("--doc-edits", type=int, default=6, help="replaced tokens per article (default 6)")
    p.add_argument("--span-edits", type=int, default=2, help="replaced tokens per snippet (default 2)")
    p.add_argument("--threads", type=int, help="torch threads (default: 1 for a FILE, as for the server: its edits "
                   "multiply a few rows at a time, which more threads on a busy CPU only slow down; torch's for "
                   "--test-sets)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def probes_for(model, tokenizer, model_path: str | None, args) -> dict:
    """``--probes``, else this model's shipped or cached probes (matched by ``probe_key``), else
    fitted on validation and cached."""
    from ..model.registry import model_dir
    from .probes import cached_probes, load_probes

    if args.probes:
        found = load_probes(Path(args.probes))
        if found is None:
            raise AnalyzeError(f"{args.probes} lacks document.safetensors or span.safetensors")
        return found
    return cached_probes(model, tokenizer, model_dir(model_path), cap=args.probe_cap,
                         progress=not getattr(args, "quiet", True))


def run(args: argparse.Namespace) -> int:
    import torch

    from ..cli import read_text_file
    from ..model.registry import load_model, load_tokenizer

    if args.file is None and not args.test_sets:
        raise AnalyzeError("give a FILE to analyse, or --test-sets")
    threads = args.threads or (None if args.test_sets else 1)
    if threads:
        torch.set_num_threads(threads)
    out = Path(args.out)
    start = time.perf_counter()
    text = read_text_file(Path(args.file)) if args.file else None
    if text is not None and not text.strip():
        raise AnalyzeError(f"{args.file} is empty: nothing to analyse")
    model = load_model(args.model, args.device)
    tokenizer = load_tokenizer(args.model)
    if args.test_sets:
        return _suite(model, tokenizer, args, out, start)
    return _file(model, tokenizer, args, text, out, start)


def _file(model, tokenizer, args, text: str, out: Path, start: float) -> int:
    from .document import analyze_document
    from .heatmap import render_html, render_png

    probes = probes_for(model, tokenizer, args.model, args)
    loaded = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    dc = analyze_document(model, tokenizer, text, probes=probes, max_edits=args.max_edits,
                          section_tokens=args.section_tokens, language=args.language)
    stem = Path(args.file).stem
    title = f"vqlsp compute: {Path(args.file).name}"
    render_html(dc, out / f"{stem}.heat.html", title=title)
    render_png(dc, out / f"{stem}.heat.png", title=title)
    summary = dc.summary()
    summary["timings_s"].update(load_and_probes=loaded - start, total=time.perf_counter() - start)
    (out / f"{stem}.compute.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    mean = dc.document["mean"]
    print(f"{args.file}: {len(dc.offsets)} tokens, {len(dc.sections)} section(s), {len(dc.sentences)} sentences")
    for key, value in mean.items():
        if value is not None:
            print(f"  {key:<11} document mean {value:.4g}")
    if "topic_exit_depth" in dc.document:
        print(f"  topic probe exits at depth {dc.document['topic_exit_depth']} ({dc.document['topic_at_exit']})")
    print(f"  wrote {out / (stem + '.heat.html')}, {out / (stem + '.heat.png')}, {out / (stem + '.compute.json')}"
          f" in {time.perf_counter() - start:.1f} s")
    return 0


def _suite(model, tokenizer, args, out: Path, start: float) -> int:
    from ..train.data import bbc_news
    from .document import analyze_document
    from .heatmap import render_html, render_png
    from .probes import load_probes
    from .report import write_json, write_report
    from .suite import SuiteConfig, run_suite

    out.mkdir(parents=True, exist_ok=True)
    cfg = SuiteConfig(docs=args.docs or None, spans=args.spans or None, doc_edits=args.doc_edits,
                      span_edits=args.span_edits, probe_cap=args.probe_cap)
    results = run_suite(model, tokenizer, cfg, out, progress=not args.quiet,
                        probes=lambda: probes_for(model, tokenizer, args.model, args))
    write_json(results, out / "analysis.json")  # kept even if what follows fails
    article = bbc_news("test")[0]
    dc = analyze_document(model, tokenizer, article.text, probes=load_probes(out / "probes"),
                          max_edits=args.max_edits, section_tokens=args.section_tokens)
    title = f"vqlsp compute: {article.source} ({article.label})"
    render_html(dc, out / "heat.html", title=title)
    render_png(dc, out / "heat.png", title=title)
    heat = {"source": article.source, "tokens": len(dc.offsets), "document": dc.document,
            "sentences": dc.sentences, "timings_s": dc.timings}
    results["heat"] = heat
    write_report(results, out, heat)
    print((out / "REPORT.md").read_text(encoding="utf-8"))
    print(f"wrote {out}/analysis.json, REPORT.md and plots in {time.perf_counter() - start:.0f} s")
    return 0
