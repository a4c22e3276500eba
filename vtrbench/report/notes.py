"""The sentences under a table: what the cells mean, how the intervals were computed, what † means.

Layer: above ``model`` and ``options``; ``tables`` puts these notes and warnings into the Report.
"""

from __future__ import annotations

import pandas as pd

from vtrbench.report.model import SAME_BOOTSTRAP, SIGNIFICANCE_MARK, Block
from vtrbench.report.options import ReportOptions
from vtrbench.report.stats import FEW_CELLS, MIN_SEEDS


def few_seeds(blocks: list[Block]) -> str | None:
    """A warning when a compared system has fewer than MIN_SEEDS seeds (None otherwise)."""
    counts = []
    for b in blocks:
        if b.diff is None:
            continue
        compared = b.diff.notna().any(axis=1).to_numpy()
        for i, loc in enumerate(b.mean.index):
            key = loc if isinstance(loc, tuple) else (loc,)
            if b.layout == "paper" and key[1] == "none":
                continue  # no loss: an untrained system (zero-shot), the same on every seed
            if compared[i] or key == b.baseline_row:
                counts.append(int(b.n.loc[loc].max()))
    low = sorted({c for c in counts if 0 < c < MIN_SEEDS})
    if not low:
        return None
    return (
        f"some compared systems have only {'/'.join(map(str, low))} seed(s), fewer than {MIN_SEEDS}: the "
        "seed level of the bootstrap resamples very few distinct seed sets and shrinks the seed variance "
        "by (S-1)/S, so the intervals are too narrow (with one seed, seed noise is not covered at all)"
    )


def interval_method(n_boot: int, seed: int, bootstrap: str, frame: pd.DataFrame) -> str:
    """How the baseline intervals were computed, in words (the notes and the LaTeX † footnote)."""
    if bootstrap == "queries":
        return (
            f"a paired bootstrap over queries ({n_boot} replicates, seed {seed}) of the seed-averaged "
            "per-query values; seed noise is not covered"
        )
    how = (
        f"a hierarchical paired bootstrap ({n_boot} replicates, seed {seed}) that resamples each "
        "system's seeds, then the queries shared by both systems"
    )
    seeds = frame.groupby("config_hash")["seed"].nunique()
    if seeds.max() < 2:
        how += "; every configuration has one seed, so seed noise is not covered"
    elif seeds[seeds >= 2].min() <= MIN_SEEDS:
        # Resampling S seeds from S gives the plug-in variance: (S-1)/S of the sample variance.
        s = int(seeds[seeds >= 2].min())
        how += f"; with {s} seeds the seed level shrinks the seed variance by (S-1)/S = {s - 1}/{s}"
    return how


def standard_notes(
    blocks: list[Block],
    options: ReportOptions,
    baseline: str | None,
    frame: pd.DataFrame,
    correction: str = "none",
    n_tested: int = 0,
) -> list[str]:
    """The notes every table gets (cells, bold), those its blocks need (transductive, banks, QB-Norm)
    and, with a ``baseline`` (its shown name), how Δ and † were computed."""
    notes = [
        "cells: mean ± sample std (ddof=1) over the n seeds of one configuration; one seed: the mean alone; "
        "n lists seeds per column (a/b/…) where they differ",
        "bold: best of each column within a block (R@K and RSum highest, MdR and MnR lowest), "
        "compared at the printed precision; ties are all bold",
    ]
    if any(b.transductive for b in blocks):
        shown_t = ", ".join(dict.fromkeys(b.post for b in blocks if b.transductive))
        notes.append(
            f"transductive blocks ({shown_t}) re-normalise the similarity with all test queries at once; "
            "compare them only with each other"
        )
    hub_banks = [p for p in ("is-bank", "csls-bank", "dsl-bank") if any(b.post == p for b in blocks)]
    if hub_banks:
        notes.append(
            f"{', '.join(hub_banks)}: inductive, with the qbnorm banks (training captions for t2v; training "
            "videos for v2t, vtrbench's extension); dsl-bank is vtrbench's inductive variant of DSL; "
            "parameters in protocol.post_options"
        )
    if any(b.post == "qbnorm" for b in blocks):
        notes.append(
            "qbnorm: t2v is the official QB-Norm (bank of training captions); v2t (bank of training "
            "videos) is vtrbench's extension; see protocol.qbnorm in the result files"
        )
    if baseline is not None:
        how = interval_method(options.n_boot, options.boot_seed, options.bootstrap, frame)
        notes.append(
            f"Δ: {options.metric} minus that of {baseline}, with a 95 % percentile interval from {how}; "
            "per query the same quantity as the columns (expected recall@K under random tie-breaking, "
            "expected rank for MnR, from the stored per-query tie counts), so Δ is the difference of the "
            "two cells"
        )
        if n_tested:
            notes.append(f"{SIGNIFICANCE_MARK}: {significance_rule(correction, n_tested)}")
    return notes


def significance_rule(correction: str, n_tested: int) -> str:
    """What a † means, in words (the notes and the LaTeX footnote)."""
    p = f"bootstrap p = 2 min(P*(Δ* ≤ 0), P*(Δ* ≥ 0)) from {SAME_BOOTSTRAP}"
    if correction == "holm":
        return (
            f"the difference to the baseline is significant at 5 % family-wise (Holm's correction over "
            f"the {n_tested} tested cells; {p})"
        )
    if correction == "bonferroni":
        return (
            f"the difference to the baseline is significant at 5 % family-wise (Bonferroni over the "
            f"{n_tested} tested cells; {p})"
        )
    return (
        f"the difference to the baseline has {p} below 5 %, per cell without a multiple-comparison "
        f"correction ({n_tested} cell{'s' * (n_tested != 1)} tested"
        + (f"; Holm applies by default above {FEW_CELLS}" if n_tested <= FEW_CELLS else "")
        + ")"
    )
