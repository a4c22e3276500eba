"""One post-processing's block: cells grouped by configuration, mean ± std, best flags, baseline Δ.

Layer: above ``model`` and ``options``, below ``tables`` (which builds one block per post-processing
and the notes around them). ``figures`` reads the same groups (:func:`config_groups`) and loss
variants (:func:`loss_variants`) so that a figure's lines are the table's rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vtrbench.errors import VtrbenchError
from vtrbench.report.loading import files_text
from vtrbench.report.model import DECIMALS, Block, metric_name, sort_key
from vtrbench.report.options import PAPER_ROW_FIELDS, ReportOptions, is_per_query
from vtrbench.report.perquery import MissingCounts
from vtrbench.report.stats import (
    ALPHA,
    adjust_p,
    bootstrap_p,
    hierarchical_replicates,
    paired_replicates,
    per_seed_values,
    resolve_correction,
)
from vtrbench.results import HIGHER_IS_BETTER, TRANSDUCTIVE
from vtrbench.runs.tune.notes import TUNED_LABEL


def key_text(value: Any) -> str:
    """A row or column value as the table keys it (None and NaN as ``—``)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return str(value)


def config_groups(
    sub: pd.DataFrame, fields: tuple[str, ...], layout: str
) -> dict[tuple[str, ...], pd.DataFrame]:
    """Rows of ``sub`` grouped by ``fields`` (sorted keys); each group must be the seeds of one config."""
    keyed: dict[tuple[str, ...], list[int]] = {}
    for pos, values in enumerate(zip(*(sub[f].tolist() for f in fields), strict=True)):
        keyed.setdefault(tuple(key_text(v) for v in values), []).append(pos)
    groups = {}
    for key in sorted(keyed, key=lambda k: tuple(sort_key(x) for x in k)):
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
                f"(config_hash {pairs}; files {files_text(list(g['path']))}); {hint}"
            )
        dup = g["seed"][g["seed"].duplicated()]
        if len(dup):
            seed = dup.iloc[0]
            raise VtrbenchError(
                f"seed {seed} of {where} ({g['post'].iloc[0]}) appears in more than one file: "
                f"{files_text(list(g.loc[g['seed'] == seed, 'path']))}"
            )
        groups[key] = g
    return groups


def _best(mean: pd.DataFrame, metrics: dict[str, str]) -> pd.DataFrame:
    best = np.zeros(mean.shape, dtype=bool)
    for j, col in enumerate(mean.columns):
        name = metric_name(metrics[col])
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


def row_name(key: tuple[str, ...], layout: str) -> str:
    """A row as messages name it: ``label + loss`` (paper) or the pivot row value."""
    return f"{key[0]} + {key[1]}" if layout == "paper" else key[0]


@dataclass
class _Cells:
    """A block's numbers before the baseline: the frames, and the result rows behind each cell."""

    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    metrics: dict[str, str]  # the metric each column shows
    groups: dict[tuple[tuple[str, ...], str], pd.DataFrame]  # (row key, column) -> the seeds' rows
    row_keys: list[tuple[str, ...]]
    diff_columns: list[str]  # the columns that get a Δ (paper: the Δ metric first)


def _paper_cells(sub: pd.DataFrame, options: ReportOptions) -> _Cells:
    groups = config_groups(sub, PAPER_ROW_FIELDS, "paper")
    keys = list(groups)
    index = pd.MultiIndex.from_tuples(keys, names=list(PAPER_ROW_FIELDS))
    assert options.columns is not None, "ReportOptions.checked() fills in the columns"
    columns = list(options.columns)
    mean = pd.DataFrame([groups[k][columns].mean() for k in keys], index=index, columns=columns)
    std = pd.DataFrame([groups[k][columns].std(ddof=1) for k in keys], index=index, columns=columns)
    n = pd.DataFrame([groups[k][columns].count() for k in keys], index=index, columns=columns)
    # The Δ column compares `metric`; the other per-query columns get significance marks.
    metric = options.metric
    diff_columns = [metric] + [c for c in columns if c != metric and is_per_query(c)]
    cells = {(k, c): groups[k] for k in keys for c in diff_columns}
    return _Cells(mean, std, n, {c: c for c in columns}, cells, keys, diff_columns)


def _pivot_cells(sub: pd.DataFrame, options: ReportOptions) -> _Cells:
    metric = options.metric
    groups = config_groups(sub, (options.rows, options.cols), "pivot")
    row_values = sorted({k[0] for k in groups}, key=sort_key)
    columns = sorted({k[1] for k in groups}, key=sort_key)
    index = pd.Index(row_values, name=options.rows)
    mean = pd.DataFrame(np.nan, index=index, columns=columns)
    std = mean.copy()
    n = pd.DataFrame(0, index=index, columns=columns)
    for (r, c), g in groups.items():
        mean.loc[r, c] = g[metric].mean()
        std.loc[r, c] = g[metric].std(ddof=1)
        n.loc[r, c] = int(g[metric].count())
    cells = {((r,), c): g for (r, c), g in groups.items()}
    return _Cells(mean, std, n, {c: metric for c in columns}, cells, [(r,) for r in row_values], columns)


def build_block(
    sub: pd.DataFrame,
    results: Sequence[dict[str, Any]],
    post: str,
    options: ReportOptions,
    missing: set[str],
) -> Block:
    """One post-processing's block from its rows ``sub`` of the results frame (``options`` checked);
    ``missing`` collects the files whose tie counts a Δ lacked."""
    transductive = bool(sub["transductive"].any()) or TRANSDUCTIVE[post]
    cells = _paper_cells(sub, options) if options.layout == "paper" else _pivot_cells(sub, options)
    block = Block(
        post=post,
        title=f"{post} (transductive)" if transductive else post,
        transductive=transductive,
        layout=options.layout,
        mean=cells.mean,
        std=cells.std,
        n=cells.n,
        best=_best(cells.mean, cells.metrics),
        metrics=cells.metrics,
    )
    if options.baseline is None:
        return block
    matches = _match_baseline(options.baseline, cells.row_keys, options.layout)
    if len(matches) > 1:
        raise VtrbenchError(
            f"baseline {options.baseline!r} matches {len(matches)} rows: "
            + ", ".join(repr(row_name(k, options.layout)) for k in matches)
            + "; name one of them"
        )
    if matches:
        block.baseline_row = matches[0]
        _add_differences(block, cells, results, options, missing)
    return block


def _add_differences(
    block: Block,
    cells: _Cells,
    results: Sequence[dict[str, Any]],
    options: ReportOptions,
    missing: set[str],
) -> None:
    """Set Δ, its interval, its p-value and the n/a flags of every row against the baseline row."""
    base = block.baseline_row
    assert base is not None
    paper = options.layout == "paper"
    diff = pd.DataFrame(np.nan, index=cells.mean.index, columns=cells.diff_columns)
    lo, hi, p = diff.copy(), diff.copy(), diff.copy()
    na = pd.DataFrame(False, index=cells.mean.index, columns=cells.diff_columns)
    for col in cells.diff_columns:
        base_cell = cells.groups.get((base, col))
        if base_cell is None:
            continue
        col_metric = col if paper else options.metric
        try:
            base_values = per_seed_values([results[i] for i in base_cell["result"]], block.post, col_metric)
        except MissingCounts as e:
            base_values, base_missing = None, str(e)
        for key in cells.row_keys:
            cell = cells.groups.get((key, col))
            if key == base or cell is None:
                continue
            loc = key if paper else key[0]
            try:
                if base_values is None:
                    raise MissingCounts(base_missing)
                values = per_seed_values([results[i] for i in cell["result"]], block.post, col_metric)
            except MissingCounts as e:
                na.loc[loc, col] = True
                missing.add(str(e).split(": no per_query", 1)[0])
                continue
            point, interval, p_value = _difference(values, base_values, (key, base), block.post, options)
            diff.loc[loc, col], lo.loc[loc, col], hi.loc[loc, col] = point, interval[0], interval[1]
            p.loc[loc, col] = p_value
    block.diff, block.diff_lo, block.diff_hi, block.diff_p, block.diff_na = diff, lo, hi, p, na


def _difference(
    values: np.ndarray,
    base_values: np.ndarray,
    keys: tuple[tuple[str, ...], tuple[str, ...]],
    post: str,
    options: ReportOptions,
) -> tuple[float, np.ndarray, float]:
    """Δ of one cell (seeds x queries ``values``) against the baseline's: the point estimate, the
    95 % percentile interval and the bootstrap p-value, all from one set of replicates."""
    if values.shape[1] != base_values.shape[1]:
        key, base = keys
        raise VtrbenchError(
            f"{row_name(key, options.layout)!r} and the baseline {row_name(base, options.layout)!r} rank "
            f"different numbers of queries in {post} ({values.shape[1]} vs {base_values.shape[1]}): "
            "not the same test set"
        )
    if options.bootstrap == "queries":
        point, reps = paired_replicates(
            values.mean(0), base_values.mean(0), n_boot=options.n_boot, seed=options.boot_seed
        )
    else:
        point, reps = hierarchical_replicates(
            values, base_values, n_boot=options.n_boot, seed=options.boot_seed
        )
    return point, np.percentile(reps, [2.5, 97.5]), bootstrap_p(reps)


def mark_significance(blocks: list[Block], correction: str) -> tuple[str, int]:
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


def _option_value(value: Any) -> str:
    # Options of other rows make a column float (NaN where absent): print 10.0 as 10 again.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def loss_variants(frame: pd.DataFrame) -> pd.DataFrame:
    """Name a loss with its options where the table holds one loss with different options (a DSL
    temperature sweep), so that each variant is its own row instead of two configurations in a cell."""
    option_cols = [c for c in frame.columns if c.startswith("loss_options.")]
    if not option_cols:
        return frame
    frame = frame.copy()
    # a tuned row's loss options are in its tuned note, not in its name
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
