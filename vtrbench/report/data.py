"""The report's numbers for scripts: ``report --format json|csv``.

The same :class:`~vtrbench.report.model.Report` the Markdown and LaTeX writers print, at full
precision: one record per table cell (block, row, column) with the mean, sample std and seed count,
the best flag, and, when a baseline is set, Δ with its 95 % interval, the bootstrap p-value, the
p-value after the table's correction and the † mark; plus the warnings, notes and provenance. A
plot or dashboard reading these shows what the paper's table shows (rounded to one decimal there).

JSON: ``{"format": "vtrbench-report", "version": 1, "layout", "metric", "baseline", "bootstrap",
"interval", "correction", "tested_cells", "alpha", "row_fields", "col_field", "labels", "provenance",
"warnings", "notes", "cells": [record, ...], "delta_column": [...]}``; NaN is ``null``.
``delta_column`` repeats the Markdown's Δ column (the ``metric`` of every row against the baseline),
which is present even when that metric is not a shown column (its cells then carry no †).

CSV: one header line, then one line per record with ``kind`` = ``cell``, followed by lines of kind
``warning``, ``note`` and ``provenance`` whose ``text`` column holds the sentence (numbers empty).

A record: ``block`` (its title), ``post``, ``transductive``, one key per row field (``label`` and
``loss`` in the paper layout, the pivot's row field otherwise) holding the value in the result files,
``row_name`` (as the table shows the row), ``column`` (a metric column, or the pivot column's value),
``column_name``, ``metric``, ``mean``, ``std`` (null for one seed), ``n``, ``best``, ``baseline`` (this
row is the baseline), ``delta``, ``delta_lo``, ``delta_hi``, ``p``, ``p_adjusted``, ``significant``
(the †), ``delta_na`` (a Δ was asked but a result has no per-query tie counts: "n/a").
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from vtrbench.report.decomposition import to_data as decomposition_data
from vtrbench.report.model import Block, Report

FORMAT_VERSION = 1
RECORD_KEYS = (
    "block",
    "post",
    "transductive",
    "row_name",
    "column",
    "column_name",
    "metric",
    "mean",
    "std",
    "n",
    "best",
    "baseline",
    "delta",
    "delta_lo",
    "delta_hi",
    "p",
    "p_adjusted",
    "significant",
    "delta_na",
)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    x = float(value)
    return None if math.isnan(x) else x


def _at(frame: Any, loc: Any, col: Any) -> Any:
    if frame is None or col not in frame.columns:
        return None
    return frame.at[loc, col]


def _field_keys(fields: list[str]) -> list[str]:
    """Record keys of the row fields; a pivot row field named like a record key gets a ``row_`` prefix."""
    reserved = {"kind", "text", *RECORD_KEYS}
    return [f"row_{f}" if f in reserved else f for f in fields]


def _records(report: Report, block: Block) -> list[dict[str, Any]]:
    fields = list(block.mean.index.names)
    keys = _field_keys(fields)
    out = []
    for loc in block.mean.index:
        key = loc if isinstance(loc, tuple) else (loc,)
        row_name = " + ".join(block.names.get(f, k) for f, k in zip(fields, key, strict=True))
        is_base = block.baseline_row is not None and key == block.baseline_row
        for col in block.mean.columns:
            n = int(block.n.at[loc, col])
            if n == 0 and math.isnan(float(block.mean.at[loc, col])):
                continue  # an empty pivot cell
            record: dict[str, Any] = {
                "block": block.title,
                "post": block.post,
                "transductive": block.transductive,
            }
            record.update(dict(zip(keys, key, strict=True)))
            sig = _at(block.sig, loc, col)
            na = _at(block.diff_na, loc, col)
            record.update(
                row_name=row_name,
                column=str(col),
                column_name=(
                    str(col) if block.layout == "paper" else block.names.get(block.col_field or "", str(col))
                ),
                metric=block.metrics[col],
                mean=_number(block.mean.at[loc, col]),
                std=_number(block.std.at[loc, col]),
                n=n,
                best=bool(block.best.at[loc, col]),
                baseline=is_base,
                delta=_number(_at(block.diff, loc, col)),
                delta_lo=_number(_at(block.diff_lo, loc, col)),
                delta_hi=_number(_at(block.diff_hi, loc, col)),
                p=_number(_at(block.diff_p, loc, col)),
                p_adjusted=_number(_at(block.diff_p_adj, loc, col)),
                significant=bool(sig) if sig is not None else False,
                delta_na=bool(na) if na is not None else False,
            )
            out.append(record)
    return out


def report_records(report: Report) -> list[dict[str, Any]]:
    """One record per table cell, blocks in the table's order (see the module note)."""
    return [r for block in report.blocks for r in _records(report, block)]


def delta_records(report: Report) -> list[dict[str, Any]]:
    """The Markdown's Δ column (paper layout: ``report.metric`` of each row vs the baseline), also when
    that metric is not one of the shown columns; empty without a baseline or in the pivot layout."""
    out = []
    for block in report.blocks:
        if block.layout != "paper" or block.diff is None or report.metric not in block.diff.columns:
            continue
        fields = list(block.mean.index.names)
        for loc in block.mean.index:
            key = loc if isinstance(loc, tuple) else (loc,)
            out.append(
                {
                    "block": block.title,
                    "post": block.post,
                    **dict(zip(_field_keys(fields), key, strict=True)),
                    "row_name": " + ".join(block.names.get(f, k) for f, k in zip(fields, key, strict=True)),
                    "metric": report.metric,
                    "baseline": key == block.baseline_row,
                    "delta": _number(block.diff.at[loc, report.metric]),
                    "delta_lo": _number(block.diff_lo.at[loc, report.metric]),
                    "delta_hi": _number(block.diff_hi.at[loc, report.metric]),
                    "p": _number(_at(block.diff_p, loc, report.metric)),
                    "delta_na": bool(_at(block.diff_na, loc, report.metric) or False),
                }
            )
    return out


def report_data(report: Report) -> dict[str, Any]:
    """Everything the table says, as plain JSON-ready data (see the module note)."""
    return {
        "format": "vtrbench-report",
        "version": FORMAT_VERSION,
        "layout": report.layout,
        "metric": report.metric,
        "baseline": report.baseline_shown,
        "bootstrap": report.bootstrap if report.baseline else None,
        "interval": report.interval if report.baseline else None,
        "correction": report.correction if report.baseline else None,
        "tested_cells": report.n_tested,
        "alpha": report.alpha,
        "row_fields": list(report.row_fields),
        "col_field": report.col_field,
        "labels": dict(report.names.full),
        "provenance": list(report.provenance),
        "warnings": list(report.warnings),
        "notes": list(report.notes),
        "cells": report_records(report),
        "delta_column": delta_records(report),
        "decomposition": None if report.decomposition is None else decomposition_data(report.decomposition),
    }


def render_json(report: Report) -> str:
    """:func:`report_data` as indented JSON (UTF-8 text, no NaN)."""
    return json.dumps(report_data(report), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def render_csv(report: Report) -> str:
    """The cells as CSV (full precision), then the warnings, notes and provenance (kind, text)."""
    fields = _field_keys(list(report.row_fields))
    header = ["kind", "block", "post", "transductive", *fields, *RECORD_KEYS[3:], "text"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for record in report_records(report):
        writer.writerow({"kind": "cell", **{k: ("" if v is None else v) for k, v in record.items()}})
    for kind, texts in (
        ("warning", report.warnings),
        ("note", report.notes),
        ("provenance", report.provenance),
    ):
        for text in texts:
            writer.writerow({"kind": kind, "text": text})
    return buf.getvalue()
