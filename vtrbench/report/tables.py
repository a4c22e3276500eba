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
    check_comparable,
    deduplicate,
    results_frame,
)
from vtrbench.report.stats import BOOTSTRAPS, hierarchical_bootstrap, paired_bootstrap, per_seed_values
from vtrbench.results import DIRECTIONS, HIGHER_IS_BETTER, POSTPROCESSING, TRANSDUCTIVE

LAYOUTS = ("paper", "pivot")
PAPER_METRICS = ("R@1", "R@5", "R@10", "MdR", "MnR")
PAPER_COLUMNS = tuple(f"{d}/{m}" for d in DIRECTIONS for m in PAPER_METRICS) + ("RSum",)
# What a paper prints (CLIP4Clip, CAMoE): R@1/5/10 and MdR per direction, and their sum.
DEFAULT_COLUMNS = tuple(f"{d}/{m}" for d in DIRECTIONS for m in ("R@1", "R@5", "R@10", "MdR")) + ("RSum",)
SIGNIFICANCE_MARK = "†"
SIG_TOL = 1e-9
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
    sig: pd.DataFrame | None = None  # the cell's difference to the baseline has a 95 % CI excluding 0
    names: Names = field(default_factory=Names)

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
) -> Block:
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
    lo, hi = diff.copy(), diff.copy()
    for col in diff_columns:
        base_cell = cells.get((base, col))
        if base_cell is None:
            continue
        col_metric = col if layout == "paper" else metric
        base_values = per_seed_values([results[i] for i in base_cell["result"]], post, col_metric)
        for key in row_keys:
            cell = cells.get((key, col))
            if key == base or cell is None:
                continue
            values = per_seed_values([results[i] for i in cell["result"]], post, col_metric)
            if values.shape[1] != base_values.shape[1]:
                raise VtrbenchError(
                    f"{_row_name(key, layout)!r} and the baseline {_row_name(base, layout)!r} rank "
                    f"different numbers of queries in {post} ({values.shape[1]} vs {base_values.shape[1]}): "
                    "not the same test set"
                )
            loc = key if layout == "paper" else key[0]
            if bootstrap == "queries":
                found = paired_bootstrap(values.mean(0), base_values.mean(0), n_boot=n_boot, seed=boot_seed)
            else:
                found = hierarchical_bootstrap(values, base_values, n_boot=n_boot, seed=boot_seed)
            diff.loc[loc, col], lo.loc[loc, col], hi.loc[loc, col] = found
    block.diff, block.diff_lo, block.diff_hi = diff, lo, hi
    # A tolerance: the bootstrap's weighted sums may leave 1e-15 where an exact 0 belongs.
    excludes_zero = ((lo > SIG_TOL) | (hi < -SIG_TOL)).reindex(
        index=mean.index, columns=mean.columns, fill_value=False
    )
    block.sig = excludes_zero.fillna(False).astype(bool)
    return block


def build_report(
    results: Sequence[dict[str, Any]],
    *,
    layout: str = "paper",
    metric: str = "t2v/R@1",
    rows: str = "label",
    cols: str = "loss",
    posts: Sequence[str] = POSTPROCESSING,
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
) -> Report:
    """Aggregate result dicts (from :func:`load_results`) into a :class:`Report`.

    ``layout``: ``paper`` or ``pivot``. ``metric``: the pivot cells' metric and the metric of the
    baseline differences (default ``t2v/R@1``). ``rows``/``cols``: pivot fields (any descriptor or
    option column of :func:`results_frame`). ``posts``: which post-processing blocks, in order; a
    post that no result has is left out with a note. ``baseline``: a row (paper: its label when that is
    unique, ``"label + loss"`` or a (label, loss) tuple; pivot: a row value) to difference every other
    row against. ``allow_mixed``: see :func:`check_comparable`.
    """
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
    notes[:0] = _standard_notes(blocks, metric, shown, n_boot, boot_seed, bootstrap, frame)
    from vtrbench.tune.notes import tuned_notes

    notes += names.footnotes + dedup_notes + tuned_notes(results)
    return Report(
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
    if frame.groupby("config_hash")["seed"].nunique().max() < 2:
        how += "; every configuration has one seed, so seed noise is not covered"
    return how


def _standard_notes(
    blocks: list[Block],
    metric: str,
    baseline: str | None,
    n_boot: int,
    seed: int,
    bootstrap: str,
    frame: pd.DataFrame,
) -> list[str]:
    notes = [
        "cells: mean ± sample std (ddof=1) over the n seeds of one configuration; one seed: the mean alone; "
        "n lists seeds per column (a/b/…) where they differ",
        "bold: best of each column within a block (R@K and RSum highest, MdR and MnR lowest), "
        "compared at the printed precision; ties are all bold",
    ]
    if any(b.transductive for b in blocks):
        notes.append(
            "transductive blocks (dsl) re-normalise the similarity with all test queries at once; "
            "compare them only with each other"
        )
    if any(b.post == "qbnorm" for b in blocks):
        notes.append(
            "qbnorm: t2v is the official QB-Norm (bank of training captions); v2t (bank of training "
            "videos) is vtrbench's extension; see protocol.qbnorm in the result files"
        )
    if baseline is not None:
        how = interval_method(n_boot, seed, bootstrap, frame)
        notes.append(
            f"Δ: {metric} minus that of {baseline}, with a 95 % percentile interval from {how}; "
            "from the stored per_query_ranks, per query R@K counts rank ≤ K "
            "(expected ranks of ties as stored)"
        )
        if any(b.sig is not None and b.sig.to_numpy().any() for b in blocks):
            notes.append(
                f"{SIGNIFICANCE_MARK}: the difference to {baseline} in this column has a 95 % interval "
                "(same bootstrap) that excludes 0"
            )
    return notes
