"""One document's per-token compute as a heat map: an HTML page, and a PNG.

Each meter gets a copy of the text with every token shaded by its value
(darker: more compute), scaled from the meter's minimum to its maximum over the
document; hovering a token in the HTML shows its numbers, and the sentence
table lists each sentence's mean beside the document's.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from .document import METERS, DocumentCompute

ORDER = ("reuse", "exit", "active", "learners", "reuse_rows")
COLORMAP = "YlOrRd"


def _scaled(values: np.ndarray) -> np.ndarray:
    finite = values[~np.isnan(values)]
    if not len(finite):
        return np.full(len(values), np.nan)
    lo, hi = float(finite.min()), float(finite.max())
    return (values - lo) / (hi - lo) if hi > lo else np.where(np.isnan(values), np.nan, 0.5)


def _meters(dc: DocumentCompute, meters) -> list[str]:
    return [m for m in (meters or ORDER) if m in dc.meters]


def _rgb(cmap, v: float) -> str:
    if np.isnan(v):
        return "#ffffff"
    r, g, b, _ = cmap(0.1 + 0.8 * v)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def render_html(dc: DocumentCompute, path: Path, *, title: str = "vqlsp compute", meters=None) -> None:
    from matplotlib import colormaps

    cmap = colormaps[COLORMAP]
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
             ".t{white-space:pre-wrap;font-family:monospace;line-height:1.6;border:1px solid #ccc;padding:1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(dc.offsets)} tokens in {len(dc.sections)} section(s). Document means: "
             + ", ".join(f"{m} {_fmt(dc.document['mean'].get(m))}" for m in _meters(dc, meters)) + ".</p>"]
    if "topic_exit_depth" in dc.document:
        d = dc.document
        parts.append(f"<p>Topic probe: <b>{html.escape(d['topic_at_exit'])}</b> at depth {d['topic_exit_depth']} "
                     f"(last layer's probe: {html.escape(d['topic_probe_last_layer'])}).</p>")
    for meter in _meters(dc, meters):
        values = dc.meters[meter]
        shade = _scaled(values)
        parts.append(f"<h2>{meter}</h2><p>{html.escape(METERS[meter])}; min {_fmt(np.nanmin(values))}, "
                     f"max {_fmt(np.nanmax(values))}, mean {_fmt(np.nanmean(values))}.</p><div class='t'>")
        prev = 0
        for i, (s, e) in enumerate(dc.offsets):
            parts.append(html.escape(dc.text[prev:s]))
            mark = "" if meter not in ("reuse", "reuse_rows") or dc.measured[i] else " (nearest edit)"
            parts.append(f"<span style='background:{_rgb(cmap, shade[i])}' title='{meter} {_fmt(values[i])}"
                         f"{mark}'>{html.escape(dc.text[s:e])}</span>")
            prev = max(prev, e)
        parts.append(html.escape(dc.text[prev:]) + "</div>")
    parts.append("<h2>Sentences</h2><table><tr><th>#</th><th>start</th>"
                 + "".join(f"<th>{m}</th>" for m in _meters(dc, meters)) + "<th>text</th></tr>")
    for k, s in enumerate(dc.sentences):
        snippet = dc.text[s["chars"][0] : s["chars"][1]][:80]
        parts.append(f"<tr><td>{k + 1}</td><td>{s['chars'][0]}</td>"
                     + "".join(f"<td>{_fmt(s.get(m))}</td>" for m in _meters(dc, meters))
                     + f"<td style='text-align:left'>{html.escape(snippet)}</td></tr>")
    parts.append("</table>")
    path.write_text("\n".join(parts), encoding="utf-8")


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.3g}"


def _layout(dc: DocumentCompute, width: int, max_tokens: int) -> list[tuple[int, int, str]]:
    """(row, column, text) of each token, wrapping at ``width`` characters and at newlines."""
    row = col = 0
    out = []
    prev = 0
    for s, e in dc.offsets[:max_tokens]:
        gap, piece = dc.text[prev:s], dc.text[s:e]
        breaks = gap.count("\n") + piece.count("\n")
        if breaks:
            row, col = row + breaks, 0
            gap, piece = gap.rsplit("\n", 1)[-1] if "\n" in gap and "\n" not in piece else "", piece.rsplit("\n", 1)[-1]
        col += len(gap)
        piece = piece.replace("\r", "") or " "
        if col + len(piece) > width:
            row, col = row + 1, 0
        out.append((row, col, piece))
        col += len(piece)
        prev = max(prev, e)
    return out


def render_png(
    dc: DocumentCompute, path: Path, *, title: str = "vqlsp compute", meters=None, width: int = 110,
    max_tokens: int = 700,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    cmap = colormaps[COLORMAP]
    names = _meters(dc, meters)
    cells = _layout(dc, width, max_tokens)
    rows = (cells[-1][0] + 1) if cells else 1
    fig, axes = plt.subplots(len(names), 1, figsize=(width * 0.09, 0.6 + len(names) * (rows * 0.17 + 0.5)),
                             squeeze=False)
    for ax, meter in zip(axes[:, 0], names):
        shade = _scaled(dc.meters[meter])
        for i, (r, c, piece) in enumerate(cells):
            ax.add_patch(Rectangle((c, -r - 1), len(piece), 1, color=_rgb(cmap, shade[i]), linewidth=0))
            ax.text(c, -r - 0.5, piece, fontsize=6, family="monospace", va="center")
        values = dc.meters[meter]
        ax.set_title(f"{meter}: {METERS[meter]} (min {_fmt(np.nanmin(values))}, max {_fmt(np.nanmax(values))})",
                     fontsize=8, loc="left")
        ax.set_xlim(0, width)
        ax.set_ylim(-rows - 0.2, 0.2)
        ax.axis("off")
    shown = min(len(dc.offsets), max_tokens)
    fig.suptitle(f"{title} ({shown} of {len(dc.offsets)} tokens shown)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
