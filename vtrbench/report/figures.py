"""Figures from result files (matplotlib, optional)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vtrbench.errors import VtrbenchError
from vtrbench.report.loading import check_comparable, results_frame
from vtrbench.report.tables import PAPER_ROW_FIELDS, _groups, _row_name
from vtrbench.results import DIRECTIONS, POSTPROCESSING

PLOT_KS = (1, 5, 10, 50)

# --------------------------------------------------------------------------- figure


def plot_report(
    results: Sequence[dict[str, Any]], out_png: str | Path, *, post: str = "raw", allow_mixed: bool = False
) -> Path:
    """Recall@K curves (K = 1, 5, 10, 50; mean ± std over seeds) per label + loss for t2v and v2t, and
    the CAMoE gate weight per expert (mean over seeds) as a bar chart when results carry ``gate``.
    Writes a PNG and returns its path.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise VtrbenchError("matplotlib is not installed: pip install 'vtrbench[plot]'") from None
    results = list(results)
    if post not in POSTPROCESSING:
        raise VtrbenchError(f"unknown post-processing {post!r}; use one of {', '.join(POSTPROCESSING)}")
    check_comparable(results, allow_mixed=allow_mixed)
    frame = results_frame(results)
    sub = frame[frame["post"] == post]
    if sub.empty:
        raise VtrbenchError(f"none of the {len(results)} results has {post} metrics to plot")
    groups = _groups(sub, PAPER_ROW_FIELDS, "paper")
    gates: dict[str, dict[str, list[float]]] = {}
    for key, g in groups.items():
        for i in g["result"]:
            weights = ((results[i].get("gate") or {}).get("mean_weight")) or {}
            for expert, w in weights.items():
                gates.setdefault(_row_name(key, "paper"), {}).setdefault(expert, []).append(float(w))
    n_axes = len(DIRECTIONS) + int(bool(gates))
    fig = Figure(figsize=(4.8 * n_axes, 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_axes, squeeze=False)[0]
    for ax, direction in zip(axes, DIRECTIONS, strict=False):
        for key, g in groups.items():
            cols = [f"{direction}/R@{k}" for k in PLOT_KS]
            ax.errorbar(
                PLOT_KS,
                g[cols].mean().to_numpy(),
                yerr=g[cols].std(ddof=1).fillna(0.0).to_numpy(),
                marker="o",
                capsize=2,
                label=_row_name(key, "paper"),
            )
        ax.set_xscale("log")
        ax.set_xticks(PLOT_KS, [str(k) for k in PLOT_KS])
        ax.set_xlabel("K")
        ax.set_ylabel("R@K (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{direction} ({post})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="x-small")
    if gates:
        ax = axes[-1]
        experts = list(dict.fromkeys(e for w in gates.values() for e in w))
        width = 0.8 / len(gates)
        for j, (name, weights) in enumerate(gates.items()):
            xs = np.arange(len(experts)) + (j - (len(gates) - 1) / 2) * width
            ax.bar(xs, [float(np.mean(weights.get(e, [np.nan]))) for e in experts], width=width, label=name)
        ax.set_xticks(np.arange(len(experts)), experts)
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean gate weight")
        ax.set_title("CAMoE gate weight per expert")
        ax.legend(fontsize="x-small", loc="upper left")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
