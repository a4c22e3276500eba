"""The loss x inference decomposition: where does a gain come from, the training loss or the inference?

vtrbench evaluates every trained head with every inference post-processing (``raw``, ``dsl``,
``qbnorm``, ``is-*``, ``csls-*``, ``dsl-bank``, ``sinkhorn``), so results with two training losses
hold a 2-factor table per head: training loss x inference post-processing. This module builds it
and the two families of paired differences the question needs:

- the **loss effect at fixed inference**: each loss minus the reference loss (``infonce`` when
  present, else the first loss in name order), one post-processing at a time;
- the **inference effect at fixed loss**: each post-processing minus ``raw``, one loss at a time.

Each difference is the same quantity and the same bootstrap as the report's Δ
(:mod:`vtrbench.report.stats`): per-query expected recall (or expected rank for MnR) from the
schema-2 tie counts, point estimate = the difference of the two cells' means, and a 95 % interval
from :func:`~vtrbench.report.stats.hierarchical_bootstrap` (``seeds+queries``; the seeds of the two
cells are drawn independently, which for an inference effect, where both cells come from the same
trained heads, makes the interval conservative) or :func:`~vtrbench.report.stats.paired_bootstrap`
(``queries``). The intervals are per cell, not corrected for the many cells shown.

One sentence per head says which factor carries the gain, on the path from the reference cell
(reference loss, ``raw``) to the target cell: (``dsl`` loss, ``dsl`` inference) when both exist,
the CAMoE paper's setting, else the cell with the best mean. The factor named is the one whose
effect (loss effect at raw inference vs inference effect at the reference loss) has an interval
above zero and the larger estimate; when neither interval excludes zero, the sentence says so.

Rendered in Markdown and on the terminal (after the blocks, before the notes) and in ``--format
json`` (key ``decomposition``); the LaTeX and CSV outputs stay the paper table and its cells.

A head takes part when it has at least two losses and at least two post-processings that every one
of its (loss) cells holds, with per-query counts (schema 2); others are left out with a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vtrbench.report.perquery import MissingCounts
from vtrbench.report.stats import hierarchical_bootstrap, paired_bootstrap, per_seed_values
from vtrbench.results import POSTPROCESSING, TRANSDUCTIVE

TITLE = "Loss × inference decomposition"
REFERENCE_LOSS = "infonce"

Interval = tuple[float, float, float]  # (difference, low, high)


@dataclass
class HeadDecomposition:
    """One head's 2-factor table (means), its effect intervals and the sentence."""

    head: str
    losses: list[str]
    posts: list[str]
    reference: str
    means: pd.DataFrame  # losses x posts
    loss_effect: dict[tuple[str, str], Interval] = field(default_factory=dict)  # (loss, post)
    inference_effect: dict[tuple[str, str], Interval] = field(default_factory=dict)  # (loss, post)
    sentence: str = ""
    shown: dict[str, str] = field(default_factory=dict)  # head/loss name -> as the report shows it

    def name(self, key: str) -> str:
        return self.shown.get(key, key)


@dataclass
class Decomposition:
    metric: str
    bootstrap: str
    n_boot: int
    heads: list[HeadDecomposition]
    notes: list[str] = field(default_factory=list)


def _metric_for(metric: str) -> str:
    # the decomposition needs a per-query metric; MdR/RSum fall back to t2v R@1
    name = metric.split("/", 1)[-1]
    return metric if "/" in metric and (name.startswith("R@") or name == "MnR") else "t2v/R@1"


def decompose(
    results: Sequence[dict[str, Any]],
    frame: pd.DataFrame,
    *,
    metric: str = "t2v/R@1",
    bootstrap: str = "seeds+queries",
    n_boot: int = 1000,
    boot_seed: int = 0,
    names: Any = None,
) -> Decomposition | None:
    """The decomposition of ``results`` (``frame``: their :func:`results_frame`, loss variants named),
    or None when no head has two losses and two post-processings. ``names``: the report's
    :class:`~vtrbench.report.labels.Names`, so that heads and losses read as in the tables (the
    effects' keys stay the result files' names)."""

    def shown(field_name: str, value: str) -> str:
        return names.get(field_name, value) if names is not None else value

    metric = _metric_for(metric)
    higher = not metric.endswith("MnR")
    heads: list[HeadDecomposition] = []
    notes: list[str] = []
    for head, sub in frame.groupby("label", sort=True):
        losses = sorted(sub["loss"].unique(), key=str)
        if len(losses) < 2:
            continue
        reference = REFERENCE_LOSS if REFERENCE_LOSS in losses else losses[0]
        losses = [reference] + [lo for lo in losses if lo != reference]
        posts = [
            p
            for p in POSTPROCESSING
            if all(((sub["loss"] == lo) & (sub["post"] == p)).any() for lo in losses)
        ]
        if len(posts) < 2 or "raw" not in posts:
            continue
        cells = {
            (lo, p): [results[int(i)] for i in sub[(sub["loss"] == lo) & (sub["post"] == p)]["result"]]
            for lo in losses
            for p in posts
        }
        try:
            values = {key: per_seed_values(rs, key[1], metric) for key, rs in cells.items()}
        except MissingCounts:
            notes.append(f"{head}: left out of the decomposition (a schema-1 result has no per-query counts)")
            continue
        means = pd.DataFrame(
            [[float(values[(lo, p)].mean()) for p in posts] for lo in losses], index=losses, columns=posts
        )
        hd = HeadDecomposition(str(head), losses, posts, reference, means)
        hd.shown = {lo: shown("loss", lo) for lo in losses} | {str(head): shown("label", str(head))}

        def interval(a: np.ndarray, b: np.ndarray) -> Interval:
            if bootstrap == "queries":
                return paired_bootstrap(a.mean(0), b.mean(0), n_boot=n_boot, seed=boot_seed)
            return hierarchical_bootstrap(a, b, n_boot=n_boot, seed=boot_seed)

        for lo in losses:
            for p in posts:
                if lo != reference:
                    hd.loss_effect[(lo, p)] = interval(values[(lo, p)], values[(reference, p)])
                if p != "raw":
                    hd.inference_effect[(lo, p)] = interval(values[(lo, p)], values[(lo, "raw")])
        hd.sentence = _sentence(hd, metric, higher)
        heads.append(hd)
    if not heads:
        return None
    return Decomposition(metric, bootstrap, n_boot, heads, notes)


def _target(hd: HeadDecomposition, higher: bool) -> tuple[str, str]:
    dsl_loss = next((lo for lo in hd.losses if lo == "dsl" or lo.startswith("dsl[")), None)
    if dsl_loss is not None and dsl_loss != hd.reference and "dsl" in hd.posts:
        return dsl_loss, "dsl"
    stacked = hd.means.stack()
    return tuple(stacked.idxmax() if higher else stacked.idxmin())  # type: ignore[return-value]


def _fmt(iv: Interval) -> str:
    d, lo, hi = iv
    return f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def _sentence(hd: HeadDecomposition, metric: str, higher: bool) -> str:
    loss_key, post = _target(hd, higher)
    if loss_key == hd.reference and post == "raw":
        return (
            f"On this cache, {hd.name(hd.head)}: no cell beats ({hd.name(hd.reference)}, raw) on {metric}; "
            "no gain to attribute."
        )
    loss, ref, head = hd.name(loss_key), hd.name(hd.reference), hd.name(hd.head)
    sign = 1.0 if higher else -1.0  # a gain is up for recall, down for MnR
    loss_iv = hd.loss_effect.get((loss_key, "raw")) if loss_key != hd.reference else None
    inf_iv = hd.inference_effect.get((hd.reference, post)) if post != "raw" else None
    parts = []
    if loss_iv is not None:
        parts.append(f"training with {loss} instead of {ref} moves raw inference by {_fmt(loss_iv)}")
    if inf_iv is not None:
        tag = " (transductive)" if TRANSDUCTIVE.get(post, False) else ""
        parts.append(f"{post}{tag} inference instead of raw moves {ref} by {_fmt(inf_iv)}")
    clear = {
        name: sign * iv[0]
        for name, iv in (("the training loss", loss_iv), ("the inference post-processing", inf_iv))
        if iv is not None and (sign * iv[1] > 0 if higher else sign * iv[2] > 0)
    }
    if not clear:
        verdict = "neither factor's effect is distinguishable from zero"
    elif len(clear) == 1:
        verdict = f"{next(iter(clear))} carries the gain"
    else:
        verdict = f"both factors help, {max(clear, key=clear.__getitem__)} more"
    return f"On this cache ({head}, {metric}, towards ({loss}, {post})), {verdict}: " + "; ".join(parts) + "."


def _post_header(post: str) -> str:
    return f"{post} (T)" if TRANSDUCTIVE.get(post, False) else post


def intro(dec: Decomposition) -> str:
    """The sentence under the section's title: what the rows, columns and intervals are."""
    how = (
        "seeds and queries (hierarchical bootstrap)"
        if dec.bootstrap != "queries"
        else "queries (paired bootstrap of seed-averaged values)"
    )
    return (
        f"Rows: training loss; columns: inference post-processing, (T) = transductive (reads all test "
        f"queries at once). Effects are differences of per-query expected {dec.metric} with 95 % "
        f"intervals over {how}, {dec.n_boot} replicates, not corrected for multiplicity."
    )


def head_tables(hd: HeadDecomposition) -> list[tuple[str, list[str], list[list[str]]]]:
    """``(title, columns, rows)`` of a head's two tables, as plain text (Markdown and terminal)."""
    cols = ["loss"] + [_post_header(p) for p in hd.posts]
    rows = [[hd.name(lo)] + [f"{hd.means.at[lo, p]:.1f}" for p in hd.posts] for lo in hd.losses]
    for lo in hd.losses:
        if lo != hd.reference:
            rows.append(
                [f"loss effect: {hd.name(lo)} − {hd.name(hd.reference)}"]
                + [_fmt(hd.loss_effect[(lo, p)]) for p in hd.posts]
            )
    posts = [p for p in hd.posts if p != "raw"]
    effect_cols = ["loss"] + [_post_header(p) for p in posts]
    effect_rows = [[hd.name(lo)] + [_fmt(hd.inference_effect[(lo, p)]) for p in posts] for lo in hd.losses]
    return [
        (f"{hd.name(hd.head)}: training loss × inference", cols, rows),
        (f"{hd.name(hd.head)}: inference effect at fixed loss (vs raw)", effect_cols, effect_rows),
    ]


def render_markdown(dec: Decomposition, escape: Any = str) -> list[str]:
    """The section as Markdown lines (``escape``: the report's Markdown escaping of names)."""
    lines = [f"## {TITLE} ({dec.metric})", "", intro(dec), ""]
    for hd in dec.heads:
        # one ### heading per table: each table has its own columns
        for title, cols, rows in head_tables(hd):
            lines += [f"### {escape(title)}", ""]
            lines += [_table([[escape(c) for c in row] for row in rows], [escape(c) for c in cols]), ""]
        lines += [escape(hd.sentence), ""]
    lines += [f"- {escape(n)}" for n in dec.notes]
    return lines


def _table(rows: list[list[str]], columns: list[str]) -> str:
    align = ["left"] + ["right"] * (len(columns) - 1)
    frame = pd.DataFrame(rows, columns=columns)
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, colalign=align)


def to_data(dec: Decomposition) -> dict[str, Any]:
    """The section's numbers for ``--format json``."""
    return {
        "title": TITLE,
        "metric": dec.metric,
        "bootstrap": dec.bootstrap,
        "n_boot": dec.n_boot,
        "heads": [
            {
                "head": hd.head,
                "reference_loss": hd.reference,
                "losses": hd.losses,
                "posts": hd.posts,
                "means": {lo: {p: float(hd.means.at[lo, p]) for p in hd.posts} for lo in hd.losses},
                "loss_effect": [
                    {"loss": lo, "post": p, "diff": d, "lo": a, "hi": b}
                    for (lo, p), (d, a, b) in hd.loss_effect.items()
                ],
                "inference_effect": [
                    {"loss": lo, "post": p, "diff": d, "lo": a, "hi": b}
                    for (lo, p), (d, a, b) in hd.inference_effect.items()
                ],
                "sentence": hd.sentence,
            }
            for hd in dec.heads
        ],
        "notes": list(dec.notes),
    }
