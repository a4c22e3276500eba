"""Aggregate results into blocks (mean ± sample std over seeds, best flags, baseline Δ)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vtrbench.errors import VtrbenchError
from vtrbench.report.labels import Names, make_names
from vtrbench.report.loading import (
    METRIC_COLUMNS,
    _files,
    _provenance,
    _source,
    check_comparable,
    deduplicate,
    results_frame,
)
from vtrbench.report.perquery import MissingCounts
from vtrbench.report.stats import (
    ALPHA,
    BOOTSTRAPS,
    CORRECTIONS,
    FEW_CELLS,
    MIN_SEEDS,
    adjust_p,
    bootstrap_p,
    hierarchical_replicates,
    paired_replicates,
    per_seed_values,
    resolve_correction,
)
from vtrbench.report.validate import validate_result
from vtrbench.results import DIRECTIONS, HIGHER_IS_BETTER, POSTPROCESSING, REPORT_POSTS, TRANSDUCTIVE

LAYOUTS = ("paper", "pivot")
PAPER_METRICS = ("R@1", "R@5", "R@10", "MdR", "MnR")
PAPER_COLUMNS = tuple(f"{d}/{m}" for d in DIRECTIONS for m in PAPER_METRICS) + ("RSum",)
# What a paper prints (CLIP4Clip, CAMoE): R@1/5/10 and MdR per direction, and their sum.
DEFAULT_COLUMNS = tuple(f"{d}/{m}" for d in DIRECTIONS for m in ("R@1", "R@5", "R@10", "MdR")) + ("RSum",)
SIGNIFICANCE_MARK = "†"
# How the † note refers to the Δ interval's bootstrap; LaTeX (no Δ column) replaces it by the method.
SAME_BOOTSTRAP = "the replicates of the Δ interval's bootstrap"
# Printed decimals per metric (R@K in percent, ranks 1 = best).
DECIMALS = {"R@1": 1, "R@5": 1, "R@10": 1, "R@50": 1, "MdR": 1, "MnR": 1, "RSum": 1}
RANDOM_WEIGHTS_NOTE = "random CLIP weights: numbers are not comparable to papers"
PAPER_ROW_FIELDS = ("label", "loss")


def _metric_name(metric: str) -> str:
    return metric.split("/", 1)[1] if "/" in metric else metric


def _check_metric(metric: str) -> None:
    if metric not in METRIC_COLUMNS:
        raise VtrbenchError(f"unknown metric {metric!r}; use one of {', '.join(METRIC_COLUMNS)}")


def _per_query(metric: str) -> bool:
    name = _metric_name(metric)
    return metric != "RSum" and (name.startswith("R@") or name == "MnR")


def _check_diff_metric(metric: str) -> None:
    if not _per_query(metric):
        raise VtrbenchError(
            f"baseline differences need a per-query metric (t2v/ or v2t/ R@K or MnR), not {metric!r}: "
            "MdR and RSum are not means over one set of queries"
        )


# --------------------------------------------------------------------------- the report


@dataclass
class Block:
    """One post-processing's table. Frames share one index (rows) and one set of columns.

    ``mean``/``std``/``n``: mean, sample std (NaN for one seed) and seed count per cell; ``best``: the
    cell is the best of its column; ``metrics``: the metric each column shows. ``diff``/``diff_lo``/
    ``diff_hi``: Δ vs the baseline with its 95 % interval (NaN for the baseline itself and empty cells),
    None without a baseline or when the baseline has no row in this block.
    """

    post: str
    title: str
    transductive: bool
    layout: str
    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    best: pd.DataFrame
    metrics: dict[str, str]
    diff: pd.DataFrame | None = None
    diff_lo: pd.DataFrame | None = None
    diff_hi: pd.DataFrame | None = None
    baseline_row: tuple[str, ...] | None = None
    col_field: str | None = None
    sig: pd.DataFrame | None = None  # the cell's adjusted p-value is below the level (ALPHA)
    names: Names = field(default_factory=Names)
    diff_p: pd.DataFrame | None = None  # bootstrap p-value of each difference (NaN: no test)
    diff_p_adj: pd.DataFrame | None = None  # after the report's correction (NaN outside the family)
    diff_na: pd.DataFrame | None = None  # True: a difference was asked but a file has no tie counts

    def formatted(self) -> pd.DataFrame:
        """The block as plain text (no bold), row fields as leading columns: for terminals and tests."""
        from vtrbench.report.text import _text_columns, _text_rows

        return pd.DataFrame(_text_rows(self, "plain"), columns=_text_columns(self, "plain"))


@dataclass
class Report:
    layout: str
    metric: str
    row_fields: tuple[str, ...]
    col_field: str | None
    blocks: list[Block]
    provenance: list[str]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baseline: str | None = None
    n_results: int = 0
    frame: pd.DataFrame | None = None
    names: Names = field(default_factory=Names)
    bootstrap: str = "seeds+queries"
    interval: str = ""  # how the baseline intervals were computed, in words
    caption: str | None = None
    tex_label: str | None = None
    correction: str = "none"  # the correction applied to the † marks (holm, bonferroni, none)
    n_tested: int = 0  # cells in the correction's family (every cell that can carry a †)
    alpha: float = ALPHA
    # the loss x inference section (vtrbench.report.decomposition), None when the results lack two
    # losses and two post-processings
    decomposition: Any = None

    @property
    def baseline_shown(self) -> str | None:
        """The baseline row as the table names it (short names, renames)."""
        found = next((b.baseline_row for b in self.blocks if b.baseline_row is not None), None)
        if found is None:
            return self.baseline
        return " + ".join(self.names.get(f, k) for f, k in zip(self.row_fields, found, strict=False))


def _key_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return str(value)


def _sort_key(text: str) -> tuple[Any, ...]:
    """Numbers in numeric order (seed 2 before seed 10), then text, with numbers inside text in
    numeric order too (``dsl[temperature=10]`` before ``dsl[temperature=100]``)."""
    try:
        return (0, float(text), text)
    except ValueError:
        parts = re.split(r"(\d+(?:\.\d+)?)", text)
        return (1, tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts)), text)


def _groups(sub: pd.DataFrame, fields: tuple[str, ...], layout: str) -> dict[tuple[str, ...], pd.DataFrame]:
    """Rows of ``sub`` grouped by ``fields`` (sorted keys); each group must be the seeds of one config."""
    keyed: dict[tuple[str, ...], list[int]] = {}
    for pos, values in enumerate(zip(*(sub[f].tolist() for f in fields), strict=True)):
        keyed.setdefault(tuple(_key_text(v) for v in values), []).append(pos)
    groups = {}
    for key in sorted(keyed, key=lambda k: tuple(_sort_key(x) for x in k)):
        g = sub.iloc[keyed[key]]
        where = ", ".join(f"{f}={v!r}" for f, v in zip(fields, key, strict=True))
        configs = g[["config_hash", "cache_fingerprint"]].astype(str).drop_duplicates()
        if len(configs) > 1:
            hint = (
                "give them different labels, or use the pivot layout with a field that separates them"
                if layout == "paper"
                else "choose rows/cols that separate them"
            )
            pairs = ", ".join(f"{h} on cache {fp[:12]}" for h, fp in configs.itertuples(index=False))
            raise VtrbenchError(
                f"the table cell {where} holds {len(configs)} different configurations "
                f"(config_hash {pairs}; files {_files(list(g['path']))}); {hint}"
            )
        dup = g["seed"][g["seed"].duplicated()]
        if len(dup):
            seed = dup.iloc[0]
            raise VtrbenchError(
                f"seed {seed} of {where} ({g['post'].iloc[0]}) appears in more than one file: "
                f"{_files(list(g.loc[g['seed'] == seed, 'path']))}"
            )
        groups[key] = g
    return groups


def _best(mean: pd.DataFrame, metrics: dict[str, str]) -> pd.DataFrame:
    best = np.zeros(mean.shape, dtype=bool)
    for j, col in enumerate(mean.columns):
        name = _metric_name(metrics[col])
        shown = np.array([float(f"{v:.{DECIMALS[name]}f}") for v in mean[col].to_numpy(dtype=float)])
        if np.sum(~np.isnan(shown)) < 2:
            continue
        target = np.nanmax(shown) if HIGHER_IS_BETTER[name] else np.nanmin(shown)
        best[:, j] = shown == target
    return pd.DataFrame(best, index=mean.index, columns=mean.columns)


def _match_baseline(baseline: str | Sequence[str], keys: list[tuple[str, ...]], layout: str) -> list[tuple]:
    if not isinstance(baseline, str):
        wanted = tuple(str(x) for x in baseline)
        return [k for k in keys if k == wanted]
    if layout == "pivot":
        return [k for k in keys if k[0] == baseline]
    joined = re.sub(r"\s*\+\s*", "+", baseline.strip())
    return [k for k in keys if baseline == k[0] or joined == f"{k[0]}+{k[1]}"]


def _row_name(key: tuple[str, ...], layout: str) -> str:
    return f"{key[0]} + {key[1]}" if layout == "paper" else key[0]


def _block(
    sub: pd.DataFrame,
    results: Sequence[dict[str, Any]],
    *,
    post: str,
    layout: str,
    metric: str,
    rows: str,
    cols: str,
    baseline: str | Sequence[str] | None,
    n_boot: int,
    boot_seed: int,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    bootstrap: str = "seeds+queries",
    missing: set[str] | None = None,
) -> Block:
    """One post-processing's block; ``missing`` collects the files whose tie counts a Δ lacked."""
    missing = set() if missing is None else missing
    transductive = bool(sub["transductive"].any()) or TRANSDUCTIVE[post]
    title = f"{post} (transductive)" if transductive else post
    if layout == "paper":
        groups = _groups(sub, PAPER_ROW_FIELDS, layout)
        keys = list(groups)
        index = pd.MultiIndex.from_tuples(keys, names=list(PAPER_ROW_FIELDS))
        columns = list(columns)
        mean = pd.DataFrame([groups[k][columns].mean() for k in keys], index=index, columns=columns)
        std = pd.DataFrame([groups[k][columns].std(ddof=1) for k in keys], index=index, columns=columns)
        n = pd.DataFrame([groups[k][columns].count() for k in keys], index=index, columns=columns)
        metrics = {c: c for c in columns}
        # The Δ column compares `metric`; the other per-query columns get significance marks.
        diff_columns = [metric] + [c for c in columns if c != metric and _per_query(c)]
        cells = {(k, c): groups[k] for k in keys for c in diff_columns}
        row_keys = keys
    else:
        groups = _groups(sub, (rows, cols), layout)
        row_keys = sorted({k[0] for k in groups}, key=_sort_key)
        columns = sorted({k[1] for k in groups}, key=_sort_key)
        index = pd.Index(row_keys, name=rows)
        mean = pd.DataFrame(np.nan, index=index, columns=columns)
        std = mean.copy()
        n = pd.DataFrame(0, index=index, columns=columns)
        for (r, c), g in groups.items():
            mean.loc[r, c] = g[metric].mean()
            std.loc[r, c] = g[metric].std(ddof=1)
            n.loc[r, c] = int(g[metric].count())
        metrics = {c: metric for c in columns}
        cells = {((r,), c): g for (r, c), g in groups.items()}
        row_keys = [(r,) for r in row_keys]
        diff_columns = columns
    block = Block(
        post=post,
        title=title,
        transductive=transductive,
        layout=layout,
        mean=mean,
        std=std,
        n=n,
        best=_best(mean, metrics),
        metrics=metrics,
    )
    if baseline is None:
        return block
    matches = _match_baseline(baseline, row_keys, layout)
    if len(matches) > 1:
        raise VtrbenchError(
            f"baseline {baseline!r} matches {len(matches)} rows: "
            + ", ".join(repr(_row_name(k, layout)) for k in matches)
            + "; name one of them"
        )
    if not matches:
        return block
    base = matches[0]
    block.baseline_row = base
    diff = pd.DataFrame(np.nan, index=mean.index, columns=diff_columns)
    lo, hi, p = diff.copy(), diff.copy(), diff.copy()
    na = pd.DataFrame(False, index=mean.index, columns=diff_columns)
    for col in diff_columns:
        base_cell = cells.get((base, col))
        if base_cell is None:
            continue
        col_metric = col if layout == "paper" else metric
        try:
            base_values = per_seed_values([results[i] for i in base_cell["result"]], post, col_metric)
        except MissingCounts as e:
            base_values, base_missing = None, str(e)
        for key in row_keys:
            cell = cells.get((key, col))
            if key == base or cell is None:
                continue
            loc = key if layout == "paper" else key[0]
            try:
                if base_values is None:
                    raise MissingCounts(base_missing)
                values = per_seed_values([results[i] for i in cell["result"]], post, col_metric)
            except MissingCounts as e:
                na.loc[loc, col] = True
                missing.add(str(e).split(": no per_query", 1)[0])
                continue
            if values.shape[1] != base_values.shape[1]:
                raise VtrbenchError(
                    f"{_row_name(key, layout)!r} and the baseline {_row_name(base, layout)!r} rank "
                    f"different numbers of queries in {post} ({values.shape[1]} vs {base_values.shape[1]}): "
                    "not the same test set"
                )
            if bootstrap == "queries":
                point, reps = paired_replicates(
                    values.mean(0), base_values.mean(0), n_boot=n_boot, seed=boot_seed
                )
            else:
                point, reps = hierarchical_replicates(values, base_values, n_boot=n_boot, seed=boot_seed)
            interval = np.percentile(reps, [2.5, 97.5])
            diff.loc[loc, col], lo.loc[loc, col], hi.loc[loc, col] = point, interval[0], interval[1]
            p.loc[loc, col] = bootstrap_p(reps)
    block.diff, block.diff_lo, block.diff_hi, block.diff_p, block.diff_na = diff, lo, hi, p, na
    return block


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
    it reads every post-processing of the results, whatever ``posts`` shows.
    """
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise VtrbenchError(f"result #{i} is a {type(r).__name__}, not a result dict")
        validate_result(r, _source(r, i))
    results, dedup_notes = deduplicate(list(results))
    if not results:
        raise VtrbenchError("no results to report")
    if layout not in LAYOUTS:
        raise VtrbenchError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    _check_metric(metric)
    if baseline is not None:
        _check_diff_metric(metric)
    posts = tuple(posts)
    if not posts:
        raise VtrbenchError("no post-processing selected; use some of " + ", ".join(POSTPROCESSING))
    for p in posts:
        if p not in POSTPROCESSING:
            raise VtrbenchError(f"unknown post-processing {p!r}; use some of {', '.join(POSTPROCESSING)}")
    if n_boot < 1:
        raise VtrbenchError(f"n_boot must be at least 1, got {n_boot}")
    if tex_label is not None and not re.fullmatch(r"[A-Za-z0-9:._/+-]+", tex_label):
        raise VtrbenchError(
            f"--label {tex_label!r}: a LaTeX label uses letters, digits and : . _ / + - only "
            "(e.g. tab:results)"
        )
    if bootstrap not in BOOTSTRAPS:
        raise VtrbenchError(f"unknown bootstrap {bootstrap!r}; use one of {', '.join(BOOTSTRAPS)}")
    if correction not in CORRECTIONS:
        raise VtrbenchError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    columns = tuple(DEFAULT_COLUMNS if columns is None else columns)
    if not columns:
        raise VtrbenchError("no columns selected; use some of " + ", ".join(METRIC_COLUMNS))
    for c in columns:
        if c not in METRIC_COLUMNS:
            raise VtrbenchError(f"unknown column {c!r}; use some of {', '.join(METRIC_COLUMNS)}")
    if len(set(columns)) != len(columns):
        raise VtrbenchError(f"a column is named twice in {', '.join(columns)}")
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
    frame = _loss_variants(results_frame(results))
    names = make_names(frame, style=labels, rename=rename)
    _check_distinct_names(frame, names, PAPER_ROW_FIELDS if layout == "paper" else (rows,), cols, layout)
    if layout == "pivot":
        allowed = [c for c in frame.columns if c not in METRIC_COLUMNS and c not in ("result", "path")]
        for name, value in (("rows", rows), ("cols", cols)):
            if value not in allowed:
                raise VtrbenchError(
                    f"pivot {name}={value!r} is not a result field; use one of {', '.join(allowed)}"
                )
        if rows == cols:
            raise VtrbenchError(f"pivot rows and cols are both {rows!r}; choose two different fields")
    blocks: list[Block] = []
    notes: list[str] = []
    missing: set[str] = set()
    for post in dict.fromkeys(posts):
        sub = frame[frame["post"] == post]
        if sub.empty:
            notes.append(f"no result has {post} metrics; that block is left out")
            continue
        blocks.append(
            _block(
                sub,
                results,
                post=post,
                layout=layout,
                metric=metric,
                rows=rows,
                cols=cols,
                baseline=baseline,
                n_boot=n_boot,
                boot_seed=boot_seed,
                columns=columns,
                bootstrap=bootstrap,
                missing=missing,
            )
        )
        blocks[-1].names = names
        blocks[-1].col_field = cols if layout == "pivot" else None
    if not blocks:
        raise VtrbenchError(f"none of the {len(results)} results has metrics for {', '.join(posts)}")
    row_fields = PAPER_ROW_FIELDS if layout == "paper" else (rows,)
    baseline_name = None
    if baseline is not None:
        found = [b for b in blocks if b.baseline_row is not None]
        if not found:
            choices = sorted(
                {_row_name(k if isinstance(k, tuple) else (k,), layout) for k in blocks[0].mean.index}
            )
            raise VtrbenchError(
                f"baseline {baseline!r} is not a row of the table; rows: {', '.join(choices)}"
            )
        baseline_name = _row_name(found[0].baseline_row, layout)
        for b in blocks:
            if b.baseline_row is None:
                notes.append(
                    f"the baseline {baseline_name} has no {b.post} results: no differences in that block"
                )
    shown = baseline_name
    if baseline_name is not None:
        found_row = next(b.baseline_row for b in blocks if b.baseline_row is not None)
        shown = " + ".join(names.get(f, k) for f, k in zip(row_fields, found_row, strict=False))
    applied, n_tested = _mark_significance(blocks, correction)
    if missing:
        # Name every file without counts (the blocks record only the first one per cell).
        lacking = {_source(r, i) for i, r in enumerate(results) if not isinstance(r.get("per_query"), dict)}
        without = sorted(lacking | missing)
        warnings.append(
            f"Δ and † are n/a where a result has no per-query tie counts ({len(without)} schema-1 result "
            f"file{'s' * (len(without) != 1)}: {_files(without)}); re-run vtrbench eval on those "
            "checkpoints to compare them"
        )
    if baseline is not None:
        few = _few_seeds(blocks)
        if few:
            warnings.append(few)
    notes[:0] = _standard_notes(blocks, metric, shown, n_boot, boot_seed, bootstrap, frame, applied, n_tested)
    from vtrbench.tune.notes import tuned_notes

    notes += names.footnotes + dedup_notes + tuned_notes(results)
    section = None
    if decomposition:
        from vtrbench.report.decomposition import decompose

        section = decompose(
            results,
            frame,
            metric=metric,
            bootstrap=bootstrap,
            n_boot=n_boot,
            boot_seed=boot_seed,
            names=names,
        )
    return Report(
        decomposition=section,
        layout=layout,
        metric=metric,
        row_fields=row_fields,
        col_field=cols if layout == "pivot" else None,
        blocks=blocks,
        provenance=_provenance(results),
        warnings=warnings,
        notes=notes,
        baseline=baseline_name,
        n_results=len(results),
        frame=frame,
        names=names,
        bootstrap=bootstrap,
        interval=interval_method(n_boot, boot_seed, bootstrap, frame),
        caption=caption,
        tex_label=tex_label,
        correction=applied,
        n_tested=n_tested,
    )


def _mark_significance(blocks: list[Block], correction: str) -> tuple[str, int]:
    """Set each block's ``diff_p_adj`` and ``sig`` (†) with one correction over the whole table.

    The family: every tested cell in a shown column (a cell that can carry a †). Returns the
    correction applied and the family size.
    """
    family: list[tuple[Block, Any, str]] = []
    for b in blocks:
        if b.diff_p is None:
            continue
        for col in b.diff_p.columns:
            if col not in b.mean.columns:
                continue  # the paper layout's Δ metric when it is not a shown column: no mark to set
            for loc, value in b.diff_p[col].items():
                if not np.isnan(value):
                    family.append((b, loc, col))
    applied = resolve_correction(correction, len(family))
    adjusted = adjust_p([b.diff_p.at[loc, col] for b, loc, col in family], applied)
    for b in blocks:
        if b.diff_p is not None:
            b.diff_p_adj = pd.DataFrame(np.nan, index=b.diff_p.index, columns=b.diff_p.columns)
            b.sig = pd.DataFrame(False, index=b.mean.index, columns=b.mean.columns)
    for (b, loc, col), value in zip(family, adjusted, strict=True):
        b.diff_p_adj.at[loc, col] = value
        b.sig.at[loc, col] = bool(value < ALPHA)
    return applied, len(family)


def _few_seeds(blocks: list[Block]) -> str | None:
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
            key = tuple(_key_text(v) for v in values)
            name = tuple(names.get(f, k) for f, k in zip(fields, key, strict=True))
            other = shown.setdefault(name, key)
            if other != key:
                raise VtrbenchError(
                    f"two {'rows' if fields == row_fields else 'columns'} would both be shown as "
                    f"{' + '.join(name)!r}: {' + '.join(other)!r} and {' + '.join(key)!r}; "
                    "rename one of them to a name of its own"
                )


def _option_value(value: Any) -> str:
    # Options of other rows make a column float (NaN where absent): print 10.0 as 10 again.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _loss_variants(frame: pd.DataFrame) -> pd.DataFrame:
    """Name a loss with its options where the table holds one loss with different options (a DSL
    temperature sweep), so that each variant is its own row instead of two configurations in a cell."""
    option_cols = [c for c in frame.columns if c.startswith("loss_options.")]
    if not option_cols:
        return frame
    frame = frame.copy()
    from vtrbench.tune.notes import TUNED_LABEL  # a tuned row's loss options are in its tuned note

    default_recipe = frame[~frame["label"].astype(str).str.contains(TUNED_LABEL)]
    for loss, rows in default_recipe.groupby("loss", sort=False):
        values = rows[option_cols].astype(str).drop_duplicates()
        if len(values) < 2:
            continue
        differing = [c for c in option_cols if rows[c].astype(str).nunique() > 1]
        for i in rows.index:
            opts = ",".join(f"{c.split('.', 1)[1]}={_option_value(frame.at[i, c])}" for c in differing)
            frame.at[i, "loss"] = f"{loss}[{opts}]"
    return frame


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


def _standard_notes(
    blocks: list[Block],
    metric: str,
    baseline: str | None,
    n_boot: int,
    seed: int,
    bootstrap: str,
    frame: pd.DataFrame,
    correction: str = "none",
    n_tested: int = 0,
) -> list[str]:
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
        how = interval_method(n_boot, seed, bootstrap, frame)
        notes.append(
            f"Δ: {metric} minus that of {baseline}, with a 95 % percentile interval from {how}; per query "
            "the same quantity as the columns (expected recall@K under random tie-breaking, expected rank "
            "for MnR, from the stored per-query tie counts), so Δ is the difference of the two cells"
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
