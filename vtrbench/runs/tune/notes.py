"""Report notes for tuned results (pure: reads result dicts, never Optuna), used by vtrbench.report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: A tuned result's label ends so (vtrbench.runs.record.tuned_suffix); the report keeps such rows apart.
TUNED_LABEL = re.compile(r" \(tuned, \d+ trials\)$")
_STARTUP = re.compile(r"n_startup_trials=(\d+)")


def sampler_text(startup: int) -> str:
    """The sampler as a study's identity records it (the format of earlier releases, which resume)."""
    return f"TPESampler(n_startup_trials={startup}), re-seeded per trial from (seed, cell, finished trials)"


def startup_in(sampler: str) -> int | None:
    """The random start-up trials a recorded sampler text names, or None."""
    found = _STARTUP.search(sampler)
    return int(found.group(1)) if found else None


def random_only(record: dict[str, Any]) -> bool:
    """A tuned record whose budget never got past TPE's random start-up trials (random search)."""
    n = startup_in(str(record.get("sampler", "")))
    return n is not None and int(record.get("trials") or 0) <= n


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
        elif val.get("folds"):  # tune --folds K
            of = val.get("of", "train")
            where = f"{val['folds']} video-disjoint folds of the {of} videos (seed {val.get('seed')})"
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
        randoms = sorted(c for c, t in cells.items() if random_only(t))
        if randoms:
            notes.append(
                f"random search only: {', '.join(randoms)} had no more trials than TPE's random start-up "
                "trials, so TPE never modelled the space; a best value there is the best of random draws"
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
