"""The sentences under a table: what the cells mean, how the intervals were computed, what † means.

Layer: above ``model`` and ``options``; ``tables`` puts these notes and warnings into the Report,
and the views ask :func:`place_notes` which of them go beside the table (``--notes full|short|none``)
and which only to the notes file.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vtrbench.defaults import REPORT_NOTES, REPORT_NOTES_STYLES
from vtrbench.errors import VtrbenchError
from vtrbench.report.labels import MARKS
from vtrbench.report.model import SAME_BOOTSTRAP, SIGNIFICANCE_MARK, Block, Report
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


# --------------------------------------------------------------------------- where the notes go

#: ``--notes``: ``full`` every note under the table (as before), ``short`` what a reader of the table
#: needs beside it (the marks, †, the tuned rows, the cells), ``none`` the table alone; what is not
#: beside the table goes to ``--notes-file`` (every note, always in full).
NOTES_STYLES = REPORT_NOTES_STYLES
#: A tie rule longer than this leaves the provenance line for the end of the notes (issue 30: the
#: evaluation's rule with its formula is six lines at the top of every report).
TIES_INLINE = 80
#: What a tuned row is, in one sentence (``--notes short``); the budget, sampler, pruner and
#: objective stay in the full notes. Unequal budgets keep the full note beside the table.
TUNED_SHORT = (
    "tuned rows: each cell's best configuration from a search of equal budget on validation videos "
    "carved from the train split (vtrbench tune), retrained on the whole train split; the test split "
    "was not read while tuning"
)

# Note kinds by how their text starts (the notes of standard_notes, the builder and runs.tune.notes).
_KINDS = (
    ("cells:", "cells"),
    ("bold:", "bold"),
    ("transductive blocks", "transductive"),
    ("qbnorm:", "bank"),
    ("is-bank", "bank"),
    ("csls-bank", "bank"),
    ("dsl-bank", "bank"),
    ("Δ:", "delta"),
    (f"{SIGNIFICANCE_MARK}:", "significance"),
    ("tuned rows (", "tuned"),
    ("edge of the search space", "edge"),
    ("ties:", "ties"),
    ("no result has ", "left-out"),
    ("the baseline ", "left-out"),
)
# Kinds whose full text is needed beside the table in --notes short (the others get a short form or
# move to the notes file).
_SHORT_AS_IS = {"cells", "transductive", "mark", "left-out", "other"}


def note_kind(text: str) -> str:
    """What a note is about: ``mark`` (``a: CAMoE with ...``), ``cells``, ``bold``, ``transductive``,
    ``bank``, ``delta``, ``significance``, ``tuned``, ``edge``, ``ties``, ``left-out``,
    ``duplicates`` or ``other``."""
    if len(text) > 2 and text[1] == ":" and text[0] in MARKS:
        return "mark"
    if text.split(" ", 1)[0].isdigit() and "duplicate result file" in text:
        return "duplicates"
    return next((kind for prefix, kind in _KINDS if text.startswith(prefix)), "other")


def short_tie_rule(provenance: list[str]) -> tuple[list[str], list[str]]:
    """The provenance with a long tie rule cut to its name (``ties: expected rank under uniformly
    random tie-breaking (rule in the notes)``), and the full rule as a note (none when short)."""
    out, rules = [], []
    for item in provenance:
        if not item.startswith("ties: ") or len(item) <= TIES_INLINE:
            out.append(item)
            continue
        parts = item[len("ties: ") :].split(" | ")  # loading._distinct joins different rules so
        names = [p.split(":", 1)[0].split(";", 1)[0].strip() for p in parts]
        out.append("ties: " + " | ".join(names) + " (rule in the notes)")
        rules.append("ties: " + item[len("ties: ") :])
    return out, rules


def short_significance(report: Report) -> str:
    """What † means, in one line (``--notes short``; the bootstrap is described in the full notes)."""
    level = f"{100 * report.alpha:g} %"
    if report.correction in ("holm", "bonferroni"):
        how = "Holm's correction" if report.correction == "holm" else "Bonferroni"
        return (
            f"{SIGNIFICANCE_MARK}: different from the baseline at {level} family-wise ({how} over the "
            f"{report.n_tested} tested cells; paired bootstrap p-values)"
        )
    return (
        f"{SIGNIFICANCE_MARK}: bootstrap p below {level} against the baseline, per cell, not corrected "
        f"for the {report.n_tested} tested cells"
    )


@dataclass
class Placement:
    """What goes beside the table: ``provenance`` (the long tie rule cut to its name), ``warnings``
    and ``notes``, in that order, each possibly empty. ``place_notes(report, "full")`` is every note
    in full: what ``--notes-file`` holds, whatever the table shows."""

    provenance: list[str]
    warnings: list[str]
    notes: list[str]


def place_notes(report: Report, style: str = REPORT_NOTES) -> Placement:
    """The notes of ``report`` for ``--notes style`` (see :data:`NOTES_STYLES`)."""
    if style not in NOTES_STYLES:
        raise VtrbenchError(f"unknown notes style {style!r}; use one of {', '.join(NOTES_STYLES)}")
    provenance, rules = short_tie_rule(report.provenance)
    if style == "full":
        return Placement(provenance, list(report.warnings), report.notes + rules)
    if style == "none":
        return Placement([], [], [])
    tuned = [n for n in report.notes if note_kind(n) == "tuned"]
    beside = []
    for note in report.notes:
        kind = note_kind(note)
        if kind in _SHORT_AS_IS:
            beside.append(note)
        elif kind == "bold":
            beside.append("bold: best of each column within a block, compared at the printed precision")
        elif kind == "significance":
            beside.append(short_significance(report))
        elif kind == "delta":
            beside.append(
                f"Δ: {report.metric} minus that of {report.baseline_shown}, with a 95 % paired bootstrap "
                "interval (the full notes say how it resamples)"
            )
        elif kind == "tuned":
            # one study of equal budgets says it in a sentence; unequal budgets must stay in sight
            if len(tuned) > 1 or "UNEQUAL" in note:
                beside.append(note)
            elif TUNED_SHORT not in beside:
                beside.append(TUNED_SHORT)
    return Placement([], list(report.warnings), beside)
