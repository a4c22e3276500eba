"""Result JSONs → one pandas table → Markdown and LaTeX (and an optional PNG figure).

``report`` reads nothing but result files (results/README.md, schema 1). The public API:

- :func:`load_results` ``(paths) -> list[dict]``: every result JSON under files/folders.
- :func:`results_frame` ``(results) -> DataFrame``: one row per (result file, post-processing), flat
  columns ``label``, ``head``, ``loss``, ``seed``, ``post``, ``t2v/R@1`` … ``v2t/MnR``, ``RSum`` and the
  head/loss options as ``head_options.<key>``.
- :func:`check_comparable` ``(results, allow_mixed=False) -> list[str]``: refuses results from
  different caches, test splits or protocols.
- :func:`build_report` ``(results, *, layout, metric, rows, cols, posts, baseline, allow_mixed, …) ->
  Report``: the numbers of every table block as DataFrames (means, stds, seed counts, best flags,
  baseline differences), plus provenance and notes.
- :func:`render_markdown` ``(report) -> str`` and :func:`render_latex` ``(report, standalone=False) ->
  str``: the same Report written twice.
- :func:`paired_bootstrap` ``(a, b, n_boot, seed) -> (diff, lo, hi)``: the interval behind the Δ cells.
- :func:`plot_report` ``(results, out_png)``: recall@K curves and CAMoE gate weights (matplotlib).

Layouts. ``paper``: one row per configuration, named by its ``label`` and ``loss``; columns t2v and v2t
R@1/R@5/R@10/MdR/MnR and RSum. ``pivot``: rows = values of one field (``rows``), columns = values of
another (``cols``), cells = one ``metric``. Each inference post-processing (``raw``, ``dsl`` which is
transductive, ``qbnorm``) is its own labelled block; numbers of two post-processings never share a column.

Cells are the mean ± sample standard deviation (ddof=1) over the seeds of one configuration, one
decimal; one seed shows the mean alone. The ``n`` column gives the number of seeds; in a row whose
cells average different numbers of seeds it lists them per column (``2/1/–``). A cell must hold one
configuration: two files with the same row/column but different ``config_hash`` (or cache) are an
error, as is one seed twice, so seeds are never confused with configurations.

Bold marks the best value of each column within a block, compared at the printed precision (so that
two cells that read the same are both bold): highest for R@K and RSum, lowest for MdR and MnR
(``results.HIGHER_IS_BETTER``). A column with a single value has no bold.

Baseline differences (Δ) use ``per_query_ranks``. Per query, R@K is the indicator ``rank <= K`` of the
stored rank, in percent, and MnR is the rank itself; with the expected-rank tie policy the stored
ranks may be fractional (a query tied over positions 1-2 stores 1.5, so it counts for R@2 but not
R@1), which is why Δ can differ slightly from the difference of two table cells when scores tie. A
system's per-query value is averaged over its seeds first. The interval is a paired percentile
bootstrap over queries, see :func:`paired_bootstrap`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vtrbench.errors import VtrbenchError
from vtrbench.results import (
    DIRECTIONS,
    HIGHER_IS_BETTER,
    METRICS,
    POSTPROCESSING,
    TRANSDUCTIVE,
    discover,
    read_result,
)

LAYOUTS = ("paper", "pivot")
PAPER_METRICS = ("R@1", "R@5", "R@10", "MdR", "MnR")
PAPER_COLUMNS = tuple(f"{d}/{m}" for d in DIRECTIONS for m in PAPER_METRICS) + ("RSum",)
METRIC_COLUMNS = tuple(f"{d}/{m}" for d in DIRECTIONS for m in METRICS) + ("RSum",)
# Printed decimals per metric (R@K in percent, ranks 1 = best).
DECIMALS = {"R@1": 1, "R@5": 1, "R@10": 1, "R@50": 1, "MdR": 1, "MnR": 1, "RSum": 1}
# Results that differ in any of these may not share a table (unless allow_mixed).
COMPARABILITY_FIELDS = (
    ("cache", "fingerprint"),
    ("protocol", "test_split"),
    ("protocol", "v2t_multi_caption"),
    ("protocol", "ties"),
)
RANDOM_WEIGHTS_NOTE = "random CLIP weights: numbers are not comparable to papers"
PAPER_ROW_FIELDS = ("label", "loss")
DESCRIPTOR_COLUMNS = (
    "result",
    "path",
    "run_id",
    "dataset",
    "kind",
    "label",
    "head",
    "loss",
    "seed",
    "config_hash",
    "post",
    "transductive",
    "model",
    "pretrained",
    "cache_fingerprint",
    "random_weights",
    "test_split",
    "n_queries",
)
PLOT_KS = (1, 5, 10, 50)
_EMPTY = {"md": "—", "tex": "--", "plain": "—"}


# --------------------------------------------------------------------------- loading


def load_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read every result JSON under the given files/folders (sorted by path; see results.discover)."""
    paths = list(paths)
    files = discover(paths)
    if not files:
        raise VtrbenchError(f"no result files (*.json) under {', '.join(map(str, paths)) or '(no paths)'}")
    return [read_result(p) for p in files]


def _source(result: dict[str, Any], i: int) -> str:
    return str(result.get("_path") or result.get("run_id") or f"result #{i}")


def _plain(value: Any) -> Any:
    """Option values as table-friendly scalars (lists such as CAMoE experts become 'a,b,c')."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_plain(v)}" for k, v in value.items())
    return value


def _number(value: Any, where: str) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VtrbenchError(f"{where}: expected a number, got {value!r}")
    return float(value)


def results_frame(results: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per (result file, post-processing present in its ``metrics``).

    Columns: ``result`` (position in ``results``), ``path``, ``run_id``, ``dataset``, ``kind``,
    ``label``, ``head``, ``loss``, ``seed``, ``config_hash``, ``post``, ``transductive``, ``model``,
    ``pretrained``, ``cache_fingerprint``, ``random_weights``, ``test_split``, ``n_queries``,
    ``head_options.<key>``, ``loss_options.<key>``, then the metrics ``t2v/R@1`` … ``v2t/MnR``, ``RSum``
    (NaN where a file lacks one).
    """
    rows: list[dict[str, Any]] = []
    option_columns: list[str] = []
    for i, r in enumerate(results):
        src = _source(r, i)
        cache = r.get("cache") or {}
        protocol = r.get("protocol") or {}
        base: dict[str, Any] = {
            "result": i,
            "path": src,
            "run_id": r.get("run_id"),
            "dataset": r.get("dataset"),
            "kind": r.get("kind"),
            "label": r.get("label") or r.get("head"),
            "head": r.get("head"),
            "loss": r.get("loss"),
            "seed": r.get("seed"),
            "config_hash": r.get("config_hash"),
            "model": cache.get("model"),
            "pretrained": cache.get("pretrained"),
            "cache_fingerprint": cache.get("fingerprint"),
            "random_weights": bool(cache.get("random_weights", False)),
            "test_split": protocol.get("test_split"),
            "n_queries": protocol.get("n_queries"),
        }
        for opt in ("head_options", "loss_options"):
            for k, v in (r.get(opt) or {}).items():
                col = f"{opt}.{k}"
                base[col] = _plain(v)
                if col not in option_columns:
                    option_columns.append(col)
        metrics = r.get("metrics")
        if not isinstance(metrics, dict):
            raise VtrbenchError(
                f"{src}: 'metrics' must be an object {{post: {{direction: {{metric: value}}}}}}"
            )
        unknown = sorted(set(metrics) - set(POSTPROCESSING))
        if unknown:
            raise VtrbenchError(
                f"{src}: unknown post-processing {unknown[0]!r} in metrics "
                f"(known: {', '.join(POSTPROCESSING)})"
            )
        transductive = r.get("transductive") or {}
        for post in POSTPROCESSING:
            if post not in metrics:
                continue
            row = dict(base, post=post, transductive=bool(transductive.get(post, TRANSDUCTIVE[post])))
            for d in DIRECTIONS:
                per_dir = metrics[post].get(d) or {}
                for m in METRICS:
                    row[f"{d}/{m}"] = _number(per_dir.get(m), f"{src}: metrics.{post}.{d}.{m}")
            row["RSum"] = _number(metrics[post].get("RSum"), f"{src}: metrics.{post}.RSum")
            rows.append(row)
    columns = [c for c in DESCRIPTOR_COLUMNS] + option_columns + list(METRIC_COLUMNS)
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- comparability


def _files(files: list[str], limit: int = 3) -> str:
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def check_comparable(results: Sequence[dict[str, Any]], *, allow_mixed: bool = False) -> list[str]:
    """Refuse results from different caches, test splits or protocols (``COMPARABILITY_FIELDS``).

    Raises VtrbenchError naming the field, its values and the files holding each value. With
    ``allow_mixed=True`` returns one warning line per differing field instead (empty when all agree).
    """
    problems: list[str] = []
    warnings: list[str] = []
    for section, key in COMPARABILITY_FIELDS:
        by_value: dict[str, list[str]] = {}
        for i, r in enumerate(results):
            value = (r.get(section) or {}).get(key)
            by_value.setdefault("(missing)" if value is None else str(value), []).append(_source(r, i))
        if len(by_value) > 1:
            problems.append(
                f"{section}.{key} differs: "
                + "; ".join(f"{v!r} in {_files(files)}" for v, files in by_value.items())
            )
            warnings.append(
                f"mixed {section}.{key}: "
                + ", ".join(
                    f"{v!r} ({len(files)} file{'s' * (len(files) != 1)})" for v, files in by_value.items()
                )
            )
    if problems and not allow_mixed:
        raise VtrbenchError(
            "refusing to put these results in one table: "
            + " | ".join(problems)
            + " (pass allow_mixed=True, --allow-mixed on the command line, to combine them anyway)"
        )
    return warnings


def _distinct(values: Iterable[Any]) -> str:
    seen: list[str] = []
    for v in values:
        s = "?" if v is None else str(v)
        if s not in seen:
            seen.append(s)
    return " | ".join(seen)


def _provenance(results: Sequence[dict[str, Any]]) -> list[str]:
    caches = [r.get("cache") or {} for r in results]
    protocols = [r.get("protocol") or {} for r in results]
    return [
        "cache "
        + _distinct(f"{c.get('model', '?')}/{c.get('pretrained', '?')}" for c in caches)
        + " (fingerprint "
        + _distinct((c.get("fingerprint") or "?")[:12] for c in caches)
        + ")",
        "dataset " + _distinct(r.get("dataset") for r in results),
        "test split " + _distinct(p.get("test_split") for p in protocols),
        _distinct(p.get("n_queries") for p in protocols)
        + " text queries, "
        + _distinct(p.get("n_gallery") for p in protocols)
        + " videos",
        "v2t protocol " + _distinct(p.get("v2t_multi_caption") for p in protocols),
        "ties: " + _distinct(p.get("ties") for p in protocols),
        f"{len(results)} result file{'s' * (len(results) != 1)}",
    ]


# --------------------------------------------------------------------------- statistics


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean difference ``mean(a - b)`` over queries and its paired percentile 95 % interval.

    ``a``, ``b``: shape (Q,), per-query values of two systems on the same queries in the same order.
    Procedure (fixed so that it can be reproduced independently): ``d = a - b``;
    ``rng = numpy.random.default_rng(seed)``; for each of ``n_boot`` replicates, one call
    ``idx = rng.integers(0, Q, size=Q)`` draws query indices with replacement, shared by both systems
    (that is the pairing), and the replicate is ``d[idx].mean()``; the interval is
    ``numpy.percentile(replicates, [2.5, 97.5])`` (linear interpolation). Returns (diff, lo, hi).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_bootstrap needs two equal-length 1-d arrays, got {a.shape} and {b.shape}")
    d = a - b
    q = d.size
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    for i in range(n_boot):
        replicates[i] = d[rng.integers(0, q, size=q)].mean()
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def _metric_name(metric: str) -> str:
    return metric.split("/", 1)[1] if "/" in metric else metric


def _check_metric(metric: str) -> None:
    if metric not in METRIC_COLUMNS:
        raise VtrbenchError(f"unknown metric {metric!r}; use one of {', '.join(METRIC_COLUMNS)}")


def _check_diff_metric(metric: str) -> None:
    name = _metric_name(metric)
    if metric == "RSum" or not (name.startswith("R@") or name == "MnR"):
        raise VtrbenchError(
            f"baseline differences need a per-query metric (t2v/ or v2t/ R@K or MnR), not {metric!r}: "
            "MdR and RSum are not means over one set of queries"
        )


def per_query_values(results: Sequence[dict[str, Any]], post: str, metric: str) -> np.ndarray:
    """Per-query values of one system (its seeds averaged), shape (Q,).

    R@K: 100 × (stored rank <= K); MnR: the stored rank. ``results`` are the seeds of one configuration.
    """
    direction, name = metric.split("/", 1)
    arrays = []
    for i, r in enumerate(results):
        src = _source(r, i)
        try:
            ranks = r["per_query_ranks"][post][direction]
        except (KeyError, TypeError):
            raise VtrbenchError(
                f"{src}: no per_query_ranks.{post}.{direction}; "
                "a baseline difference needs the per-query ranks"
            ) from None
        try:
            arr = np.asarray(ranks, dtype=float)
        except (TypeError, ValueError):
            raise VtrbenchError(
                f"{src}: per_query_ranks.{post}.{direction} must be a list of numbers"
            ) from None
        if arr.ndim != 1 or arr.size == 0:
            raise VtrbenchError(f"{src}: per_query_ranks.{post}.{direction} must be a non-empty list")
        arrays.append((src, arr))
    sizes = {arr.size for _, arr in arrays}
    if len(sizes) > 1:
        raise VtrbenchError(
            f"seeds of one configuration rank different numbers of {direction} queries: "
            + ", ".join(f"{src}: {arr.size}" for src, arr in arrays)
        )
    stacked = np.stack([arr for _, arr in arrays])
    values = 100.0 * (stacked <= int(name[2:])) if name.startswith("R@") else stacked
    return values.mean(axis=0)


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

    def formatted(self) -> pd.DataFrame:
        """The block as plain text (no bold), row fields as leading columns: for terminals and tests."""
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


def _key_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return str(value)


def _sort_key(text: str) -> tuple[int, float, str]:
    """Numbers in numeric order (seed 2 before seed 10), then text."""
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


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
) -> Block:
    transductive = bool(sub["transductive"].any()) or TRANSDUCTIVE[post]
    title = f"{post} (transductive)" if transductive else post
    if layout == "paper":
        groups = _groups(sub, PAPER_ROW_FIELDS, layout)
        keys = list(groups)
        index = pd.MultiIndex.from_tuples(keys, names=list(PAPER_ROW_FIELDS))
        columns = list(PAPER_COLUMNS)
        mean = pd.DataFrame([groups[k][columns].mean() for k in keys], index=index, columns=columns)
        std = pd.DataFrame([groups[k][columns].std(ddof=1) for k in keys], index=index, columns=columns)
        n = pd.DataFrame([groups[k][columns].count() for k in keys], index=index, columns=columns)
        metrics = {c: c for c in columns}
        cells = {(k, metric): groups[k] for k in keys}  # the Δ column compares `metric` across rows
        diff_columns = [metric]
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
        base_values = per_query_values([results[i] for i in base_cell["result"]], post, metric)
        for key in row_keys:
            cell = cells.get((key, col))
            if key == base or cell is None:
                continue
            values = per_query_values([results[i] for i in cell["result"]], post, metric)
            if values.size != base_values.size:
                raise VtrbenchError(
                    f"{_row_name(key, layout)!r} and the baseline {_row_name(base, layout)!r} rank "
                    f"different numbers of queries in {post} ({values.size} vs {base_values.size}): "
                    "not the same test set"
                )
            loc = key if layout == "paper" else key[0]
            diff.loc[loc, col], lo.loc[loc, col], hi.loc[loc, col] = paired_bootstrap(
                values, base_values, n_boot=n_boot, seed=boot_seed
            )
    block.diff, block.diff_lo, block.diff_hi = diff, lo, hi
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
) -> Report:
    """Aggregate result dicts (from :func:`load_results`) into a :class:`Report`.

    ``layout``: ``paper`` or ``pivot``. ``metric``: the pivot cells' metric and the metric of the
    baseline differences (default ``t2v/R@1``). ``rows``/``cols``: pivot fields (any descriptor or
    option column of :func:`results_frame`). ``posts``: which post-processing blocks, in order; a
    post that no result has is left out with a note. ``baseline``: a row (paper: its label when that is
    unique, ``"label + loss"`` or a (label, loss) tuple; pivot: a row value) to difference every other
    row against. ``allow_mixed``: see :func:`check_comparable`.
    """
    results = list(results)
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
    frame = results_frame(results)
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
            )
        )
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
    notes[:0] = _standard_notes(blocks, metric, baseline_name, n_boot, boot_seed)
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
    )


def _standard_notes(
    blocks: list[Block], metric: str, baseline: str | None, n_boot: int, seed: int
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
    if baseline is not None:
        notes.append(
            f"Δ: {metric} minus that of {baseline}, with a paired bootstrap 95 % percentile interval over "
            f"queries ({n_boot} replicates, seed {seed}) from the stored per_query_ranks; "
            "per query R@K counts rank ≤ K (expected ranks of ties as stored), "
            "averaged over each system's seeds"
        )
    return notes


# --------------------------------------------------------------------------- formatting

_LATEX_CHARS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "≤": r"$\le$",
    "≥": r"$\ge$",
    "Δ": r"$\Delta$",
    "→": r"$\to$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "×": r"$\times$",
    "—": "---",
    "–": "--",
    "·": r"$\cdot$",
    "…": r"\dots{}",
    "τ": r"$\tau$",
    "β": r"$\beta$",
}
_MARKDOWN_SPECIAL = set("\\`*_|<>")


def latex_escape(text: str) -> str:
    """Text safe for LaTeX: the ten special characters and the Unicode symbols the report prints."""
    return "".join(_LATEX_CHARS.get(c, c) for c in str(text))


def markdown_escape(text: str) -> str:
    """Text safe inside a Markdown table cell (pipes, emphasis and HTML characters escaped)."""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in str(text))


def _signed(x: float, dec: int = 1) -> str:
    s = f"{x:+.{dec}f}"
    return "+" + s[1:] if s.startswith("-") and float(s) == 0 else s


def _cell(mean: float, std: float, dec: int, bold: bool, style: str) -> str:
    if pd.isna(mean):
        return _EMPTY[style]
    m = f"{mean:.{dec}f}"
    s = None if pd.isna(std) else f"{std:.{dec}f}"
    if style == "tex":
        m = rf"\textbf{{{m}}}" if bold else m
        return m if s is None else rf"{m}$_{{\pm {s}}}$"
    if style == "md" and bold:
        m = f"**{m}**"
    return m if s is None else f"{m} ± {s}"


def _diff_text(d: float, lo: float, hi: float, dec: int, style: str) -> str:
    if np.isnan(d):
        return _EMPTY[style]
    if style == "tex":
        return rf"${_signed(d, dec)}\ [{_signed(lo, dec)}, {_signed(hi, dec)}]$"
    return f"{_signed(d, dec)} [{_signed(lo, dec)}, {_signed(hi, dec)}]"


def _diff_arrays(block: Block, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Δ, lo, hi as arrays (rows × ``columns``), NaN where there is no difference."""
    assert block.diff is not None and block.diff_lo is not None and block.diff_hi is not None
    return tuple(
        f.reindex(columns=list(columns)).to_numpy(dtype=float)
        for f in (block.diff, block.diff_lo, block.diff_hi)
    )


def _n_text(counts: Sequence[int], style: str) -> str:
    present = {c for c in counts if c > 0}
    if len(present) <= 1:
        return str(present.pop()) if present else _EMPTY[style]
    return "/".join(str(c) if c > 0 else "–" if style != "tex" else "--" for c in counts)


def _esc(text: str, style: str) -> str:
    return latex_escape(text) if style == "tex" else markdown_escape(text) if style == "md" else str(text)


def _header(metric: str, style: str, with_direction: bool = True) -> str:
    name = _metric_name(metric)
    arrow = "↑" if HIGHER_IS_BETTER[name] else "↓"
    text = metric.replace("/", " ") if with_direction else name
    return _esc(f"{text} {arrow}" if style != "tex" else f"{text}{arrow}", style)


def _diff_header(report: Report, style: str) -> str:
    return _esc(f"Δ {report.metric} vs {report.baseline} [95 % CI]", style)


def _text_columns(block: Block, style: str) -> list[str]:
    fields = list(block.mean.index.names)
    if block.layout == "paper":
        return [_esc(f, style) for f in fields] + ["n"] + [_header(c, style) for c in block.mean.columns]
    return [_esc(f, style) for f in fields] + [_esc(str(c), style) for c in block.mean.columns] + ["n"]


def _decimals(block: Block, columns: Sequence[str]) -> list[int]:
    default = next(iter(block.metrics.values()))
    return [DECIMALS[_metric_name(block.metrics.get(c, default))] for c in columns]


def _text_rows(
    block: Block, style: str, with_diff: bool = False, columns: Sequence[str] | None = None
) -> list[list[str]]:
    """Formatted rows: row fields, then n and the cells (paper) or the cells and n (pivot); ``columns``
    widens a pivot block to columns that it lacks (shown empty)."""
    cols = list(block.mean.columns) if columns is None else list(columns)
    mean = block.mean.reindex(columns=cols).to_numpy(dtype=float)
    std = block.std.reindex(columns=cols).to_numpy(dtype=float)
    n = block.n.reindex(columns=cols, fill_value=0).to_numpy(dtype=int)
    best = block.best.reindex(columns=cols, fill_value=False).to_numpy(dtype=bool)
    decs = _decimals(block, cols)
    paper = block.layout == "paper"
    if with_diff and block.diff is not None:
        diff = _diff_arrays(block, block.diff.columns[:1])
        diff_dec = _decimals(block, block.diff.columns[:1])[0]
    out = []
    for i, loc in enumerate(block.mean.index):
        key = loc if isinstance(loc, tuple) else (loc,)
        cells = [_cell(mean[i, j], std[i, j], decs[j], bool(best[i, j]), style) for j in range(len(cols))]
        head = [_esc(k, style) for k in key]
        n_text = _n_text(n[i].tolist(), style)
        row = head + [n_text] + cells if paper else head + cells + [n_text]
        if with_diff and block.diff is not None:
            d, lo, hi = (a[i, 0] for a in diff)
            row.append("(baseline)" if key == block.baseline_row else _diff_text(d, lo, hi, diff_dec, style))
        out.append(row)
    return out


def _pivot_diff_rows(block: Block, style: str, columns: Sequence[str] | None = None) -> list[list[str]]:
    """Pivot Δ rows: every row with at least one difference (not the baseline)."""
    assert block.diff is not None
    cols = list(block.diff.columns) if columns is None else list(columns)
    d, lo, hi = _diff_arrays(block, cols)
    decs = _decimals(block, cols)
    return [
        [_esc(loc, style)]
        + [_diff_text(d[i, j], lo[i, j], hi[i, j], decs[j], style) for j in range(len(cols))]
        for i, loc in enumerate(block.diff.index)
        if not np.isnan(d[i]).all()
    ]


def _paper(report: Report) -> bool:
    return report.layout == "paper"


def render_markdown(report: Report) -> str:
    """The report as Markdown: provenance, warnings, one pipe table per post-processing block, notes."""
    lines = [f"Provenance: {' · '.join(markdown_escape(p) for p in report.provenance)}", ""]
    for w in report.warnings:
        lines += [f"> **Warning: {markdown_escape(w)}**", ""]
    for block in report.blocks:
        title = block.title if _paper(report) else f"{block.title}: {report.metric} by {report.col_field}"
        lines += [f"### {markdown_escape(title)}", ""]
        columns = _text_columns(block, "md")
        with_diff = _paper(report) and block.diff is not None
        if with_diff:
            columns.append(_diff_header(report, "md"))
        rows = _text_rows(block, "md", with_diff=with_diff)
        lines += [_markdown_table(rows, columns, n_left=len(block.mean.index.names)), ""]
        if not _paper(report) and block.diff is not None:
            lines += [f"{_diff_header(report, 'md')}:", ""]
            columns = [markdown_escape(report.row_fields[0])] + [
                markdown_escape(str(c)) for c in block.diff.columns
            ]
            lines += [_markdown_table(_pivot_diff_rows(block, "md"), columns, n_left=1), ""]
    lines += [f"- {markdown_escape(n)}" for n in report.notes]
    return "\n".join(lines) + "\n"


def _markdown_table(rows: list[list[str]], columns: list[str], n_left: int) -> str:
    align = ["left"] * n_left + ["right"] * (len(columns) - n_left)
    frame = pd.DataFrame(rows, columns=columns)
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, colalign=align)


def _tex_row(cells: list[str]) -> str:
    # A row whose first cell starts with '[' would be read as the optional argument of the previous '\\'.
    if cells and cells[0].startswith("["):
        cells = ["{}" + cells[0]] + cells[1:]
    return " & ".join(cells) + r" \\"


def render_latex(report: Report, *, standalone: bool = False) -> str:
    """The report as one booktabs ``table``; ``standalone=True`` wraps it in a compilable document.

    Needs ``\\usepackage{booktabs}`` in the including document.
    """
    paper = _paper(report)
    first = report.blocks[0]
    n_fields = len(first.mean.index.names)
    with_diff = paper and any(b.diff is not None for b in report.blocks)
    if paper:
        n_cols = n_fields + 1 + len(PAPER_COLUMNS) + int(with_diff)
        spec = "l" * n_fields + "r" * (1 + len(PAPER_COLUMNS)) + ("l" if with_diff else "")
        per_dir = len(PAPER_METRICS)
        start = n_fields + 2
        stop = [start + i * per_dir for i in range(len(DIRECTIONS) + 1)]
        head = [
            _tex_row(
                [""] * (n_fields + 1)
                + [rf"\multicolumn{{{per_dir}}}{{c}}{{{latex_escape(d)}}}" for d in DIRECTIONS]
                + [""] * (1 + int(with_diff))
            ),
            "".join(rf"\cmidrule(lr){{{stop[i]}-{stop[i + 1] - 1}}}" for i in range(len(DIRECTIONS))),
            _tex_row(
                [latex_escape(f) for f in first.mean.index.names]
                + ["$n$"]
                + [_header(c, "tex", with_direction=c == "RSum") for c in PAPER_COLUMNS]
                + ([_diff_header(report, "tex")] if with_diff else [])
            ),
        ]
    else:
        columns = sorted({c for b in report.blocks for c in b.mean.columns}, key=_sort_key)
        n_cols = 1 + len(columns) + 1
        spec = "l" + "r" * (len(columns) + 1)
        label = f"{_header(report.metric, 'tex')} by {latex_escape(report.col_field or '')}"
        head = [
            _tex_row(["", rf"\multicolumn{{{len(columns)}}}{{c}}{{{label}}}", ""]),
            rf"\cmidrule(lr){{2-{len(columns) + 1}}}",
            _tex_row(
                [latex_escape(report.row_fields[0])] + [latex_escape(str(c)) for c in columns] + ["$n$"]
            ),
        ]
    lines = [
        "% Generated by vtrbench report from result files; regenerate it rather than editing it.",
        r"% Needs \usepackage{booktabs}.",
        r"\begin{table}[t]",
        r"\centering",
        r"\scriptsize",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        *head,
    ]
    for block in report.blocks:
        lines += [
            r"\midrule",
            _tex_row([rf"\multicolumn{{{n_cols}}}{{l}}{{\textit{{{latex_escape(block.title)}}}}}"]),
        ]
        if paper:
            rows = _text_rows(block, "tex", with_diff=with_diff)
            if with_diff and block.diff is None:
                rows = [r + ["--"] for r in rows]
            lines += [_tex_row(r) for r in rows]
        else:
            lines += [_tex_row(r) for r in _text_rows(block, "tex", columns=columns)]
            if block.diff is not None:
                lines += [
                    r"\addlinespace",
                    _tex_row([rf"\multicolumn{{{n_cols}}}{{l}}{{\textit{{{_diff_header(report, 'tex')}}}}}"]),
                ]
                lines += [_tex_row(r + [""]) for r in _pivot_diff_rows(block, "tex", columns)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip", r"{\scriptsize"]
    lines.append("Provenance: " + "; ".join(latex_escape(p) for p in report.provenance) + r".\par")
    lines += [rf"\textbf{{Warning: {latex_escape(w)}.}}\par" for w in report.warnings]
    lines += [latex_escape(n[0].upper() + n[1:]) + r".\par" for n in report.notes]
    lines += ["}", r"\end{table}"]
    text = "\n".join(lines) + "\n"
    if standalone:
        text = (
            "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n"
            "\\usepackage{booktabs}\n\\begin{document}\n" + text + "\\end{document}\n"
        )
    return text


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
