"""Aggregate results into a Report (mean ± sample std over seeds, best flags, baseline Δ, notes).

The table builder. Below it: ``options`` (:class:`ReportOptions` and their checks), ``blocks`` (one
post-processing's block), ``notes`` (the sentences under the table) and the data model ``model``
(:class:`Block`, :class:`Report`). Above it: the views (``markdown``, ``latex``, ``terminal``,
``data``). The names that used to live here (``Block``, ``Report``, ``DEFAULT_COLUMNS``, ...) are
still importable from this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from vtrbench.errors import VtrbenchError
from vtrbench.report.blocks import build_block, key_text, loss_variants, mark_significance, row_name
from vtrbench.report.decomposition import decompose
from vtrbench.report.labels import Names, make_names
from vtrbench.report.loading import (
    METRIC_COLUMNS,
    check_comparable,
    deduplicate,
    files_text,
    provenance_lines,
    results_frame,
    source_name,
)
from vtrbench.report.model import DECIMALS, SAME_BOOTSTRAP, SIGNIFICANCE_MARK, Block, Report
from vtrbench.report.notes import few_seeds, interval_method, significance_rule, standard_notes
from vtrbench.report.options import (
    DEFAULT_COLUMNS,
    LAYOUTS,
    PAPER_COLUMNS,
    PAPER_METRICS,
    PAPER_ROW_FIELDS,
    ReportOptions,
)
from vtrbench.report.validate import validate_result
from vtrbench.results import REPORT_POSTS
from vtrbench.runs.tune.notes import tuned_notes
from vtrbench.runs.tune.valtest import val_test_notes

RANDOM_WEIGHTS_NOTE = "random CLIP weights: numbers are not comparable to papers"

# The names below were defined in this module before the builder was split; they stay importable.
__all__ = [
    "DECIMALS",
    "DEFAULT_COLUMNS",
    "LAYOUTS",
    "PAPER_COLUMNS",
    "PAPER_METRICS",
    "PAPER_ROW_FIELDS",
    "RANDOM_WEIGHTS_NOTE",
    "SAME_BOOTSTRAP",
    "SIGNIFICANCE_MARK",
    "Block",
    "Report",
    "ReportOptions",
    "build_report",
    "build_report_from",
    "interval_method",
    "significance_rule",
]


def build_report(
    results: Sequence[dict[str, Any]],
    *,
    layout: str = "paper",
    metric: str = "t2v/R@1",
    rows: str = "label",
    cols: str = "loss",
    posts: Sequence[str] = REPORT_POSTS,
    baseline: str | Sequence[str] | None = None,
    allow_mixed: bool = False,
    n_boot: int = 1000,
    boot_seed: int = 0,
    columns: Sequence[str] | None = None,
    bootstrap: str = "seeds+queries",
    labels: str = "short",
    rename: dict[str, str] | None = None,
    caption: str | None = None,
    tex_label: str | None = None,
    correction: str = "auto",
    decomposition: bool = True,
    decomposition_target: str | Sequence[str] | None = None,
) -> Report:
    """Aggregate result dicts (from :func:`load_results`) into a :class:`Report`.

    ``layout``: ``paper`` or ``pivot``. ``metric``: the pivot cells' metric and the metric of the
    baseline differences (default ``t2v/R@1``). ``rows``/``cols``: pivot fields (any descriptor or
    option column of :func:`results_frame`). ``posts``: which post-processing blocks, in order; a
    post that no result has is left out with a note. ``baseline``: a row (paper: its label when that is
    unique, ``"label + loss"`` or a (label, loss) tuple; pivot: a row value) to difference every other
    row against. ``allow_mixed``: see :func:`check_comparable`. ``correction``: how the † marks
    account for testing many cells: ``holm`` (step-down, family-wise 5 %), ``bonferroni``, ``none``
    (each cell at 5 %), or ``auto`` (default): Holm when more than ``stats.FEW_CELLS`` (3) cells are
    tested, else none. The family is every cell that can carry a † (each shown column's difference
    of every row to the baseline, over all blocks). ``decomposition``: add the loss x inference section
    (:mod:`vtrbench.report.decomposition`) when the results hold two losses and two post-processings;
    it reads every post-processing of the results, whatever ``posts`` shows. ``decomposition_target``:
    the cell its 2 x 2 tests, ``"LOSS:POST"`` (None: the DSL-trained, DSL-inferred cell, or the best
    mean, labelled as chosen after looking, where that is missing).

    The same as :func:`build_report_from` with these parameters as a :class:`ReportOptions`.
    """
    options = ReportOptions(
        layout=layout,
        metric=metric,
        rows=rows,
        cols=cols,
        posts=posts,
        baseline=baseline,
        allow_mixed=allow_mixed,
        n_boot=n_boot,
        boot_seed=boot_seed,
        columns=columns,
        bootstrap=bootstrap,
        labels=labels,
        rename=rename,
        caption=caption,
        tex_label=tex_label,
        correction=correction,
        decomposition=decomposition,
        decomposition_target=decomposition_target,
    )
    return build_report_from(results, options)


def build_report_from(results: Sequence[dict[str, Any]], options: ReportOptions | None = None) -> Report:
    """Aggregate result dicts (from :func:`load_results`) into a :class:`Report` as ``options`` say
    (default: ``ReportOptions()``); see :func:`build_report` for what each option does."""
    results, dedup_notes = _checked_results(results)
    options = (options or ReportOptions()).checked()
    warnings = _input_warnings(results, options.allow_mixed)
    frame = loss_variants(results_frame(results))
    names = make_names(frame, style=options.labels, rename=options.rename)
    _check_distinct_names(frame, names, options.row_fields, options.cols, options.layout)
    if options.layout == "pivot":
        _check_pivot_fields(frame, options.rows, options.cols)
    blocks, notes, missing = _blocks(frame, results, options, names)
    baseline_name, shown, baseline_notes = _baseline_names(blocks, options, names)
    notes += baseline_notes
    applied, n_tested = mark_significance(blocks, options.correction)
    if missing:
        warnings.append(_missing_counts_warning(results, missing))
    if options.baseline is not None:
        few = few_seeds(blocks)
        if few:
            warnings.append(few)
    notes[:0] = standard_notes(blocks, options, shown, frame, applied, n_tested)
    notes += names.footnotes + dedup_notes + tuned_notes(results) + val_test_notes(results)
    section = None
    if options.decomposition:
        section = decompose(
            results,
            frame,
            metric=options.metric,
            bootstrap=options.bootstrap,
            n_boot=options.n_boot,
            boot_seed=options.boot_seed,
            names=names,
            target=options.decomposition_target,
        )
    return Report(
        decomposition=section,
        layout=options.layout,
        metric=options.metric,
        row_fields=options.row_fields,
        col_field=options.cols if options.layout == "pivot" else None,
        blocks=blocks,
        provenance=provenance_lines(results),
        warnings=warnings,
        notes=notes,
        baseline=baseline_name,
        n_results=len(results),
        frame=frame,
        names=names,
        bootstrap=options.bootstrap,
        interval=interval_method(options.n_boot, options.boot_seed, options.bootstrap, frame),
        caption=options.caption,
        tex_label=options.tex_label,
        correction=applied,
        n_tested=n_tested,
    )


def _checked_results(results: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every result validated, copies counted once (and the note naming them); none left is an error."""
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise VtrbenchError(f"result #{i} is a {type(r).__name__}, not a result dict")
        validate_result(r, source_name(r, i))
    kept, dedup_notes = deduplicate(list(results))
    if not kept:
        raise VtrbenchError("no results to report")
    return kept, dedup_notes


def _input_warnings(results: list[dict[str, Any]], allow_mixed: bool) -> list[str]:
    """Warnings about the inputs: mixed caches or protocols, random weights, videos left out."""
    warnings = check_comparable(results, allow_mixed=allow_mixed)
    if any((r.get("cache") or {}).get("random_weights") for r in results):
        warnings.insert(0, RANDOM_WEIGHTS_NOTE)
    excluded = sorted(
        {int((r.get("protocol") or {}).get("excluded_failed_videos") or 0) for r in results} - {0}
    )
    if excluded:
        warnings.append(
            f"{'/'.join(map(str, excluded))} test videos failed to decode and were left out with their "
            "captions: these numbers are not on the full test split"
        )
    return warnings


def _check_pivot_fields(frame: pd.DataFrame, rows: str, cols: str) -> None:
    allowed = [c for c in frame.columns if c not in METRIC_COLUMNS and c not in ("result", "path")]
    for name, value in (("rows", rows), ("cols", cols)):
        if value not in allowed:
            raise VtrbenchError(
                f"pivot {name}={value!r} is not a result field; use one of {', '.join(allowed)}"
            )
    if rows == cols:
        raise VtrbenchError(f"pivot rows and cols are both {rows!r}; choose two different fields")


def _blocks(
    frame: pd.DataFrame, results: list[dict[str, Any]], options: ReportOptions, names: Names
) -> tuple[list[Block], list[str], set[str]]:
    """One block per post-processing with results, the notes on those left out, and the files whose
    tie counts a Δ lacked."""
    blocks: list[Block] = []
    notes: list[str] = []
    missing: set[str] = set()
    for post in dict.fromkeys(options.posts):
        sub = frame[frame["post"] == post]
        if sub.empty:
            notes.append(f"no result has {post} metrics; that block is left out")
            continue
        block = build_block(sub, results, post, options, missing)
        block.names = names
        block.col_field = options.cols if options.layout == "pivot" else None
        blocks.append(block)
    if not blocks:
        raise VtrbenchError(f"none of the {len(results)} results has metrics for {', '.join(options.posts)}")
    return blocks, notes, missing


def _baseline_names(
    blocks: list[Block], options: ReportOptions, names: Names
) -> tuple[str | None, str | None, list[str]]:
    """The baseline row as messages name it and as the table shows it (None, None without a
    baseline), and a note for each block without the baseline; a baseline in no block is an error."""
    if options.baseline is None:
        return None, None, []
    found = [b for b in blocks if b.baseline_row is not None]
    if not found:
        choices = sorted(
            {row_name(k if isinstance(k, tuple) else (k,), options.layout) for k in blocks[0].mean.index}
        )
        raise VtrbenchError(
            f"baseline {options.baseline!r} is not a row of the table; rows: {', '.join(choices)}"
        )
    base_row = found[0].baseline_row
    assert base_row is not None
    baseline_name = row_name(base_row, options.layout)
    notes = [
        f"the baseline {baseline_name} has no {b.post} results: no differences in that block"
        for b in blocks
        if b.baseline_row is None
    ]
    shown = " + ".join(names.get(f, k) for f, k in zip(options.row_fields, base_row, strict=False))
    return baseline_name, shown, notes


def _missing_counts_warning(results: list[dict[str, Any]], missing: set[str]) -> str:
    # Name every file without counts (the blocks record only the first one per cell).
    lacking = {source_name(r, i) for i, r in enumerate(results) if not isinstance(r.get("per_query"), dict)}
    without = sorted(lacking | missing)
    return (
        f"Δ and † are n/a where a result has no per-query tie counts ({len(without)} schema-1 result "
        f"file{'s' * (len(without) != 1)}: {files_text(without)}); re-run vtrbench eval on those "
        "checkpoints to compare them"
    )


def _check_distinct_names(
    frame: pd.DataFrame, names: Names, row_fields: tuple[str, ...], col_field: str, layout: str
) -> None:
    """Two different rows (or pivot columns) must never be shown under one name (e.g. after a rename)."""
    groups = [row_fields] + ([(col_field,)] if layout == "pivot" and col_field in frame.columns else [])
    for fields in groups:
        if not all(f in frame.columns for f in fields):
            continue
        shown: dict[tuple[str, ...], tuple[str, ...]] = {}
        for values in frame[list(fields)].drop_duplicates().itertuples(index=False):
            key = tuple(key_text(v) for v in values)
            name = tuple(names.get(f, k) for f, k in zip(fields, key, strict=True))
            other = shown.setdefault(name, key)
            if other != key:
                raise VtrbenchError(
                    f"two {'rows' if fields == row_fields else 'columns'} would both be shown as "
                    f"{' + '.join(name)!r}: {' + '.join(other)!r} and {' + '.join(key)!r}; "
                    "rename one of them to a name of its own"
                )
