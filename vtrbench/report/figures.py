"""Figures from result files (matplotlib, optional): recall@K curves, CAMoE gate weights, option sweeps.

Sized for one column of a two-column paper (``COLUMN_WIDTH_IN``); the format follows the file name
(.png, .pdf, .svg). Error bars are the sample std over seeds, the same spread as the table's cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vtrbench._imports import try_import
from vtrbench.errors import VtrbenchError
from vtrbench.report.blocks import config_groups, loss_variants
from vtrbench.report.labels import make_names
from vtrbench.report.loading import check_comparable, deduplicate, results_frame
from vtrbench.report.options import PAPER_ROW_FIELDS
from vtrbench.results import DIRECTIONS, POSTPROCESSING

PLOT_KS = (1, 5, 10, 50)
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
COLUMN_WIDTH_IN = 3.4  # one column of CVPR/ACM two-column pages (~3.3 in) with a little margin
PANEL_HEIGHT_IN = 2.1
PAPER_STYLE = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "legend.fontsize": 6}


def require_matplotlib() -> None:
    """Fail early, before any work, with the install hint when matplotlib is missing
    ("matplotlib is not installed: pip install 'vtrbench[plot]'")."""
    try_import("matplotlib")


def _format(out: Path) -> str:
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise VtrbenchError(f"{out}: a figure is written as .png, .pdf or .svg (by the file name)")
    return fmt


def _frame(results: Sequence[dict[str, Any]], post: str, allow_mixed: bool) -> pd.DataFrame:
    if post not in POSTPROCESSING:
        raise VtrbenchError(f"unknown post-processing {post!r}; use one of {', '.join(POSTPROCESSING)}")
    check_comparable(results, allow_mixed=allow_mixed)
    frame = loss_variants(results_frame(results))
    sub = frame[frame["post"] == post]
    if sub.empty:
        raise VtrbenchError(f"none of the {len(results)} results has {post} metrics to plot")
    return sub


def _save(fig: Any, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=_format(out), dpi=200, bbox_inches="tight")
    return out


def plot_report(
    results: Sequence[dict[str, Any]], out: str | Path, *, post: str = "raw", allow_mixed: bool = False
) -> Path:
    """Recall@K curves (K = 1, 5, 10, 50; mean ± sample std over seeds) per method + loss for t2v and
    v2t, stacked, and the CAMoE gate weight per expert (mean over seeds) when results carry ``gate``.
    Writes ``out`` (.png, .pdf or .svg) and returns its path.
    """
    require_matplotlib()
    import matplotlib
    from matplotlib.figure import Figure

    out = Path(out)
    _format(out)
    results, _ = deduplicate(list(results))
    sub = _frame(results, post, allow_mixed)
    names = make_names(sub)
    groups = config_groups(sub, PAPER_ROW_FIELDS, "paper")

    def shown(key: tuple[str, ...]) -> str:
        loss = names.get("loss", key[1])
        label = names.get("label", key[0])
        if label in names.marks:  # "CAMoE^a": the footnote mark as a mathtext superscript, not "^a"
            base, mark = names.marks[label]
            label = base.replace("$", r"\$") + rf"$^{{\mathrm{{{mark}}}}}$"
        return label + ("" if key[1] == "none" else f" + {loss}")

    gates: dict[str, dict[str, list[float]]] = {}
    for key, g in groups.items():
        for i in g["result"]:
            weights = ((results[i].get("gate") or {}).get("mean_weight")) or {}
            for expert, w in weights.items():
                gates.setdefault(shown(key), {}).setdefault(expert, []).append(float(w))
    n_axes = len(DIRECTIONS) + int(bool(gates))
    with matplotlib.rc_context(PAPER_STYLE):
        fig = Figure(figsize=(COLUMN_WIDTH_IN, PANEL_HEIGHT_IN * n_axes))
        axes = fig.subplots(n_axes, 1, squeeze=False)[:, 0]
        for ax, direction in zip(axes, DIRECTIONS, strict=False):
            for key, g in groups.items():
                cols = [f"{direction}/R@{k}" for k in PLOT_KS]
                ax.errorbar(
                    PLOT_KS,
                    g[cols].mean().to_numpy(),
                    yerr=g[cols].std(ddof=1).fillna(0.0).to_numpy(),
                    marker="o",
                    markersize=2.5,
                    linewidth=1,
                    capsize=2,
                    label=shown(key),
                )
            ax.set_xscale("log")
            ax.set_xticks(PLOT_KS, [str(k) for k in PLOT_KS])
            ax.set_xlabel("K")
            ax.set_ylabel("R@K (%)")
            ax.set_ylim(0, 100)
            ax.set_title(f"{direction} ({post}); bars: std over seeds")
            ax.grid(alpha=0.3)
        axes[0].legend(loc="lower right", ncol=1 if len(groups) < 5 else 2, frameon=False)
        if gates:
            ax = axes[-1]
            experts = list(dict.fromkeys(e for w in gates.values() for e in w))
            width = 0.8 / len(gates)
            for j, (name, weights) in enumerate(gates.items()):
                xs = np.arange(len(experts)) + (j - (len(gates) - 1) / 2) * width
                ax.bar(
                    xs, [float(np.mean(weights.get(e, [np.nan]))) for e in experts], width=width, label=name
                )
            ax.set_xticks(np.arange(len(experts)), experts)
            ax.set_ylim(0, 1)
            ax.set_ylabel("mean gate weight")
            ax.set_title("CAMoE gate weight per expert")
            ax.legend(loc="upper left", frameon=False)
        fig.tight_layout()
        return _save(fig, out)


def swept_options(frame: pd.DataFrame) -> dict[str, list[tuple[str, ...]]]:
    """{option column: [line keys]}: numeric head/loss options that take >= 3 values among results
    that agree on the head, the loss and every other option (one line per such group)."""
    if "loss_base" not in frame.columns:
        frame = frame.assign(loss_base=frame["loss"])
    option_cols = [c for c in frame.columns if c.startswith(("head_options.", "loss_options."))]
    found: dict[str, list[tuple[str, ...]]] = {}
    for col in option_cols:
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.isna().any() and values.notna().any():
            values = values.where(values.notna())
        others = [c for c in option_cols if c != col]
        keyed = frame.assign(_x=values).dropna(subset=["_x"])
        if keyed.empty:
            continue
        for key, g in keyed.groupby(["head", *others, "loss_base"], dropna=False, sort=True):
            if g["_x"].nunique() >= 3:
                found.setdefault(col, []).append(key if isinstance(key, tuple) else (key,))
    return found


def plot_sweeps(
    results: Sequence[dict[str, Any]],
    out: str | Path,
    *,
    post: str = "raw",
    metric: str = "t2v/R@1",
    allow_mixed: bool = False,
) -> list[Path]:
    """One figure per swept option (e.g. the DSL temperature or CAMoE's aux weight): ``metric`` (mean
    ± sample std over seeds) against the option's values, one line per head + loss. Written next to
    ``out`` as ``<stem>-sweep-<option><suffix>``; returns the paths (none when nothing is swept)."""
    require_matplotlib()
    import matplotlib
    from matplotlib.figure import Figure

    out = Path(out)
    _format(out)
    results, _ = deduplicate(list(results))
    sub = results_frame(results)
    sub = sub[sub["post"] == post].assign(loss_base=lambda f: f["loss"])
    if sub.empty:
        return []
    check_comparable(results, allow_mixed=allow_mixed)
    written = []
    for col, lines in swept_options(sub).items():
        option = col.split(".", 1)[1]
        with matplotlib.rc_context(PAPER_STYLE):
            fig = Figure(figsize=(COLUMN_WIDTH_IN, PANEL_HEIGHT_IN))
            ax = fig.subplots()
            option_cols = [c for c in sub.columns if c.startswith(("head_options.", "loss_options."))]
            others = [c for c in option_cols if c != col]
            for key in lines:
                mask = np.ones(len(sub), dtype=bool)
                for field_name, value in zip(["head", *others, "loss_base"], key, strict=True):
                    column = sub[field_name]
                    mask &= (column.isna() if pd.isna(value) else column == value).to_numpy()
                g = sub[mask].assign(_x=pd.to_numeric(sub.loc[mask, col], errors="coerce"))
                stats = g.groupby("_x")[metric].agg(["mean", "std"]).sort_index()
                name = f"{make_names(g).get('head', key[0])} + {make_names(g).get('loss', key[-1])}"
                ax.errorbar(
                    stats.index.to_numpy(dtype=float),
                    stats["mean"].to_numpy(),
                    yerr=stats["std"].fillna(0.0).to_numpy(),
                    marker="o",
                    markersize=2.5,
                    linewidth=1,
                    capsize=2,
                    label=name,
                )
            values = pd.to_numeric(sub[col], errors="coerce").dropna()
            if (values > 0).all() and values.max() / values.min() >= 50:
                ax.set_xscale("log")
            ax.set_xlabel(option)
            ax.set_ylabel(f"{metric} (%)" if "R@" in metric else metric)
            ax.set_title(f"{metric} against {option} ({post}); bars: std over seeds")
            ax.grid(alpha=0.3)
            ax.legend(frameon=False)
            fig.tight_layout()
            written.append(_save(fig, out.with_name(f"{out.stem}-sweep-{option}{out.suffix}")))
    return written


def plot_all(
    results: Sequence[dict[str, Any]], out: str | Path, *, post: str = "raw", allow_mixed: bool = False
) -> list[Path]:
    """:func:`plot_report` and, when the results hold a sweep, :func:`plot_sweeps`."""
    main = plot_report(results, out, post=post, allow_mixed=allow_mixed)
    return [main, *plot_sweeps(results, out, post=post, allow_mixed=allow_mixed)]
