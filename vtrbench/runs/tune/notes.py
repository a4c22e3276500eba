"""Report notes for tuned results (pure: reads result dicts, never Optuna), used by vtrbench.report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: A tuned result's label ends so (vtrbench.runs.record.tuned_suffix); the report keeps such rows apart.
TUNED_LABEL = re.compile(r" \(tuned, \d+ trials\)$")


def tuned_notes(results: Sequence[dict[str, Any]]) -> list[str]:
    """The budget, space, sampler, pruner and study of the tuned rows, and best values on an edge."""
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        t = r.get("tuned")
        if isinstance(t, dict) and t.get("cell"):
            records.setdefault((str(t.get("study")), str(t["cell"])), t)
    if not records:
        return []
    notes = []
    for study in sorted({s for s, _ in records}):
        cells = {c: t for (s, c), t in records.items() if s == study}
        first = next(iter(cells.values()))
        budgets = sorted({int(t.get("trials") or 0) for t in cells.values()})
        val = first.get("validation") or {}
        if val.get("split"):
            where = f"split {val['split']!r}"
        else:
            share = 100 * float(val.get("fraction", 0))
            where = f"{share:g} % of the {val.get('of', 'train')} videos (by video)"
        if len(budgets) == 1:
            budget = f"{budgets[0]} finished trials per cell"
        else:
            each = ", ".join(f"{c}: {t.get('trials')}" for c, t in sorted(cells.items()))
            budget = f"UNEQUAL budgets ({each})"
        notes.append(
            f"tuned rows (vtrbench tune, study {study}): {budget}, epochs ≤ {first.get('max_epochs')}, "
            f"{first.get('sampler')}, pruner {first.get('pruner')}; objective: {first.get('objective')}; "
            f"validation: {where}, the test split was not read while tuning; each cell's best configuration "
            "was retrained on the whole train split; search spaces and best values are in each result's "
            "`tuned` record"
        )
        for cell, t in sorted(cells.items()):
            edge = t.get("edge") or {}
            if edge:
                where_ = ", ".join(
                    f"{k}={_short((t.get('best_params') or {}).get(k))} ({v} bound)" for k, v in edge.items()
                )
                notes.append(
                    f"edge of the search space: {cell}'s best trial has {where_}; the space may be too small"
                )
    return notes


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
