"""Read result files into one flat DataFrame; refuse results that may not share a table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vtrbench.errors import VtrbenchError
from vtrbench.report.validate import validate_result
from vtrbench.results import DIRECTIONS, METRICS, POSTPROCESSING, TRANSDUCTIVE, discover, read_result

METRIC_COLUMNS = tuple(f"{d}/{m}" for d in DIRECTIONS for m in METRICS) + ("RSum",)
# Results that differ in any of these may not share a table (unless allow_mixed).
COMPARABILITY_FIELDS = (
    ("cache", "fingerprint"),
    ("protocol", "test_split"),
    ("protocol", "v2t_multi_caption"),
    ("protocol", "ties"),
)
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

# --------------------------------------------------------------------------- loading


def load_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read every result JSON under the given files/folders (sorted by path; see results.discover), each
    checked by :func:`vtrbench.report.validate.validate_result` (ranges, internal consistency)."""
    paths = list(paths)
    files = discover(paths)
    if not files:
        raise VtrbenchError(f"no result files (*.json) under {', '.join(map(str, paths)) or '(no paths)'}")
    results = [read_result(p) for p in files]
    for r in results:
        validate_result(r, str(r.get("_path")))
    return results


def source_name(result: dict[str, Any], i: int) -> str:
    """How messages name a result: its file, else its run id, else its position ``#i``."""
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
        src = source_name(r, i)
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


def files_text(files: list[str], limit: int = 3) -> str:
    """The first ``limit`` files, comma-separated, and how many more."""
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
            by_value.setdefault("(missing)" if value is None else str(value), []).append(source_name(r, i))
        if len(by_value) > 1:
            problems.append(
                f"{section}.{key} differs: "
                + "; ".join(f"{v!r} in {files_text(files)}" for v, files in by_value.items())
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


def provenance_lines(results: Sequence[dict[str, Any]]) -> list[str]:
    """The report's provenance: caches, dataset, split, sizes, protocols, file count (one line each)."""
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


def deduplicate(results: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One result per (config_hash, seed, cache fingerprint): a copied file counts once, not as a seed.

    Copies with the same metrics are dropped (the first by path stays) and named in the returned notes;
    copies whose metrics differ are an error, because then one of them is not what its name says.
    """
    kept: dict[tuple[str, str, str], dict[str, Any]] = {}
    dropped: list[str] = []
    for i, r in enumerate(results):
        key = (str(r.get("config_hash")), str(r.get("seed")), str((r.get("cache") or {}).get("fingerprint")))
        first = kept.get(key)
        if first is None:
            kept[key] = r
            continue
        if first.get("metrics") != r.get("metrics"):
            raise VtrbenchError(
                f"{source_name(r, i)} and {source_name(first, 0)} are the same run "
                f"(config_hash {key[0]}, seed {key[1]}) with different metrics; remove the one that is wrong"
            )
        dropped.append(Path(source_name(r, i)).name)
    notes = []
    if dropped:
        notes.append(
            f"{len(dropped)} duplicate result file{'s' * (len(dropped) != 1)} (same config_hash, seed and "
            f"cache as another) counted once: {files_text(dropped)}"
        )
    return list(kept.values()), notes
