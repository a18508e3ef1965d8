"""The evaluation report: ``report.md`` and ``report.html`` with the same tables, plus PNG plots.

Plots are drawn on matplotlib ``Figure`` objects with the Agg canvas (no pyplot state, no display), and
both documents link the PNGs relatively, so the folder can be moved or published as a whole.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from parley.nlu.evaluation.results import EvalResults

WORST_INTENTS = 15
CONFUSED_PAIRS = 10
HEATMAP_INTENTS = 20
TIMING_LABELS = {
    "train_s": "train time (s)",
    "predict_s": "test-set parse time (s)",
    "examples_per_s": "parse throughput (utterances/s)",
    "oos_threshold": "OOS threshold (top confidence)",
    "label_threshold": "per-label probability threshold",
    "folds": "cross-validation folds",
}


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str


@dataclass(frozen=True)
class _Paragraph:
    text: str


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class _Image:
    path: str
    alt: str


_Block = _Heading | _Paragraph | _Table | _Image


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def plot_reliability(systems: Mapping[str, EvalResults], path: Path) -> None:
    """Accuracy against mean confidence per bin (one line per system) above the share of examples."""
    fig = Figure(figsize=(6.5, 7))
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1.2], sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    for name, res in systems.items():
        used = [b for b in res.reliability if b.count]
        top.plot(
            [b.confidence for b in used],
            [b.accuracy for b in used],
            marker="o",
            label=f"{name} (ECE {_pct(res.ece)}%)",
        )
        total = sum(b.count for b in res.reliability) or 1
        centres = [(b.lower + b.upper) / 2 for b in res.reliability]
        bottom.step(
            centres, [b.count / total for b in res.reliability], where="mid", label=name, linewidth=1.5
        )
    top.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="accuracy in bin", title="Reliability diagram (15 bins)")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    bottom.set(xlabel="confidence of the top intent", ylabel="share of examples")
    bottom.grid(alpha=0.3)
    _save(fig, path)


def plot_confusion(res: EvalResults, path: Path, name: str, top_n: int = HEATMAP_INTENTS) -> bool:
    """Heat map of the ``top_n`` intents most involved in mistakes (diagonal blanked); False if none."""
    labels, matrix = res.confusion.labels, res.confusion.matrix
    if not labels:
        return False
    errors = matrix.copy()
    np.fill_diagonal(errors, 0)
    involvement = errors.sum(axis=0) + errors.sum(axis=1)
    if not involvement.any():
        return False
    chosen = sorted(np.argsort(-involvement, kind="stable")[:top_n].tolist(), key=lambda i: labels[i])
    chosen = [i for i in chosen if involvement[i] > 0]
    sub = errors[np.ix_(chosen, chosen)]
    size = max(4.0, 0.38 * len(chosen) + 2.5)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    shown = np.ma.masked_equal(sub, 0)
    image = ax.imshow(shown, cmap="Reds", vmin=0, vmax=max(1, int(sub.max())), interpolation="nearest")
    names = [labels[i] for i in chosen]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xticks(np.arange(-0.5, len(names)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(names)), minor=True)
    ax.grid(which="minor", color="#dddddd", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    vmax = max(1, int(sub.max()))
    for (i, j), count in np.ndenumerate(sub):
        if count:
            colour = "white" if count > vmax / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    ax.set(
        xlabel="predicted",
        ylabel="gold",
        title=f"{name}: mistakes among the {len(names)} most confused intents",
    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="examples (correct ones not shown)")
    _save(fig, path)
    return True


def worst_intents(res: EvalResults, n: int = WORST_INTENTS) -> list[tuple[str, float, float, float, int]]:
    """The ``n`` gold intents with the lowest F1 (ties: more support first), as table rows.

    For multi-label data the F1 is that of each label over the predicted sets.
    """
    scores = res.multilabel.per_label if res.multilabel is not None else res.per_intent
    rows = [(k, v.precision, v.recall, v.f1, v.support) for k, v in scores.items() if v.support > 0]
    rows.sort(key=lambda r: (r[3], -r[4], r[0]))
    return rows[:n]


def plot_per_intent_f1(res: EvalResults, path: Path, name: str, n: int = WORST_INTENTS) -> bool:
    """Horizontal bars of the ``n`` worst per-intent F1 scores; False when there are none."""
    rows = worst_intents(res, n)
    if not rows:
        return False
    fig = Figure(figsize=(7, 0.35 * len(rows) + 1.5))
    ax = fig.subplots()
    names = [f"{r[0]} (n={r[4]})" for r in rows][::-1]
    values = [r[3] for r in rows][::-1]
    bars = ax.barh(names, values, color="#4c72b0")
    for bar, value in zip(bars, values, strict=True):
        ax.text(
            min(value + 0.01, 0.9),
            bar.get_y() + bar.get_height() / 2,
            f"{value:.2f}",
            va="center",
            fontsize=8,
        )
    ax.set(xlim=(0, 1), xlabel="F1", title=f"{name}: the {len(rows)} intents with the lowest F1")
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
    return True


def _blocks(systems: Mapping[str, EvalResults], out_dir: Path, title: str) -> list[_Block]:
    names = list(systems)
    blocks: list[_Block] = [
        _Heading(1, title),
        _Paragraph(
            f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Scores in %, higher is better "
            "except ECE (expected calibration error of the top intent's confidence)."
        ),
        _Heading(2, "Scores"),
    ]
    metrics_seen: list[str] = []
    for res in systems.values():
        metrics_seen += [m for m in res.headline() if m not in metrics_seen]
    rows = [("examples", *(f"{systems[n].examples:,}" for n in names))]
    rows += [
        (m, *(_pct(systems[n].headline()[m]) if m in systems[n].headline() else "n/a" for n in names))
        for m in metrics_seen
    ]
    timing_keys: list[str] = []
    for res in systems.values():
        timing_keys += [k for k in res.timings if k not in timing_keys]
    rows += [
        (
            TIMING_LABELS.get(k, k),
            *(f"{systems[n].timings[k]:g}" if k in systems[n].timings else "n/a" for n in names),
        )
        for k in timing_keys
    ]
    blocks.append(_Table(("metric", *names), tuple(rows)))
    plot_reliability(systems, out_dir / "reliability.png")
    blocks += [_Heading(2, "Calibration"), _Image("reliability.png", "reliability diagram")]
    for name, res in systems.items():
        slug = _slug(name)
        blocks.append(_Heading(2, name if len(systems) > 1 else "Details"))
        if res.confused_pairs:
            blocks += [
                _Heading(3, f"Most confused intent pairs (top {CONFUSED_PAIRS})"),
                _Table(
                    ("gold", "predicted", "count"),
                    tuple((p.gold, p.predicted, str(p.count)) for p in res.confused_pairs[:CONFUSED_PAIRS]),
                ),
            ]
            if plot_confusion(res, out_dir / f"confusion-{slug}.png", name):
                blocks.append(_Image(f"confusion-{slug}.png", f"{name} confusion heat map"))
        worst = worst_intents(res)
        if worst:
            blocks += [
                _Heading(
                    3,
                    f"Per-intent F1, worst {len(worst)}"
                    + (" (each label over the predicted sets)" if res.multilabel is not None else ""),
                ),
                _Table(
                    ("intent", "precision", "recall", "F1", "support"),
                    tuple((i, _pct(p), _pct(r), _pct(f), str(s)) for i, p, r, f, s in worst),
                ),
            ]
            if plot_per_intent_f1(res, out_dir / f"per-intent-f1-{slug}.png", name):
                blocks.append(_Image(f"per-intent-f1-{slug}.png", f"{name} per-intent F1"))
        if res.slots is not None and res.slots.per_type:
            slot_rows = sorted(res.slots.per_type.items(), key=lambda kv: (kv[1].f1, kv[0]))
            blocks += [
                _Heading(3, "Slots by type (seqeval, entity level)"),
                _Table(
                    ("slot", "precision", "recall", "F1", "support"),
                    tuple(
                        (k, _pct(v.precision), _pct(v.recall), _pct(v.f1), str(v.support))
                        for k, v in slot_rows
                    ),
                ),
            ]
    return blocks


def _cell_md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(blocks: Sequence[_Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, _Paragraph):
            out.append(f"{block.text}\n")
        elif isinstance(block, _Table):
            out.append("| " + " | ".join(_cell_md(h) for h in block.header) + " |")
            out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(block.header))) + "|")
            out += ["| " + " | ".join(_cell_md(c) for c in row) + " |" for row in block.rows]
            out.append("")
        else:
            out.append(f"![{block.alt}]({block.path})\n")
    return "\n".join(out)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px}"
    "td:not(:first-child){text-align:right}th{background:#f3f3f3}img{max-width:100%;margin:0.5em 0 1.5em}"
)


def _html(blocks: Sequence[_Block], title: str) -> str:
    out = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{_CSS}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, _Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, _Paragraph):
            out.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, _Table):
            out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in block.header))
            out.append("</tr></thead><tbody>")
            out += [
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows
            ]
            out.append("</tbody></table>")
        else:
            out.append(f'<img src="{html.escape(block.path)}" alt="{html.escape(block.alt)}">')
    out.append("</body></html>\n")
    return "\n".join(out)


def write_report(results: EvalResults | Mapping[str, EvalResults], out_dir: Path, title: str) -> Path:
    """Write ``report.md``, ``report.html``, ``results.json`` and the PNGs into ``out_dir``.

    ``results`` is one model's results, or several by model name (one column each, e.g. a baseline next
    to Parley's model). Returns the path of ``report.md``.
    """
    systems = {"model": results} if isinstance(results, EvalResults) else dict(results)
    if not systems:
        raise ValueError("nothing to report: no results given")
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = _blocks(systems, out_dir, title)
    (out_dir / "report.html").write_text(_html(blocks, title), encoding="utf-8")
    (out_dir / "results.json").write_text(
        json.dumps({"title": title, "results": {k: v.to_dict() for k, v in systems.items()}}, indent=2)
        + "\n",
        encoding="utf-8",
    )
    path = out_dir / "report.md"
    path.write_text(_markdown(blocks), encoding="utf-8")
    return path
