"""Validation vs test for tuned results (pure: reads result dicts, never Optuna).

Each tuned cell's best trial carries its validation objective (``tuned.best_value``: the mean over
folds with ``tune --folds``, their values in ``tuned.best_fold_values``). ``ablate --tuned`` measures
the same objective on the test split (raw similarity, mean over seeds). :func:`val_test_rows` puts the
two side by side per cell; :func:`spearman` says whether validation ranked the cells as test does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vtrbench.runs.tune.objective import OBJECTIVES, spread


@dataclass
class ValTest:
    study: str
    cell: str
    objective: str  # a key of OBJECTIVES
    validation: float
    fold_std: float | None  # over the best trial's fold models (None: one hold-out)
    folds: int | None
    test: float  # the same objective on the test split, mean over seeds
    seeds: int


def objective_key(text: str) -> str:
    """The objective a study's recorded text names (earlier studies: R@1's)."""
    for key, described in OBJECTIVES.items():
        if str(text).startswith(described):
            return key
    return "r1"


def test_objective(result: dict[str, Any], objective: str) -> float | None:
    """``objective`` on a result's test metrics (raw similarity); None when they are missing."""
    raw = (result.get("metrics") or {}).get("raw") or {}
    try:
        if objective == "rsum":
            return float(raw["RSum"])
        return float(raw["t2v"]["R@1"]) + float(raw["v2t"]["R@1"])
    except (KeyError, TypeError):
        return None


def val_test_rows(results: Sequence[dict[str, Any]]) -> list[ValTest]:
    """One row per tuned (study, cell) with a validation value and at least one test result."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        t = r.get("tuned")
        if isinstance(t, dict) and t.get("cell") and t.get("best_value") is not None:
            groups.setdefault((str(t.get("study")), str(t["cell"])), []).append(r)
    rows = []
    for (study, cell), rs in sorted(groups.items()):
        t = rs[0]["tuned"]
        key = objective_key(str(t.get("objective", "")))
        tests = [v for v in (test_objective(r, key) for r in rs) if v is not None]
        if not tests:
            continue
        folds = t.get("best_fold_values") or None
        rows.append(
            ValTest(
                study,
                cell,
                key,
                float(t["best_value"]),
                spread(folds) if folds else None,
                len(folds) if folds else None,
                math.fsum(tests) / len(tests),
                len(tests),
            )
        )
    return rows


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in order[i : j + 1]:
            out[k] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on average ranks); None for < 3 items or a constant."""
    if len(a) != len(b) or len(a) < 3:
        return None
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = math.fsum(ra) / len(ra), math.fsum(rb) / len(rb)
    va = math.fsum((x - ma) ** 2 for x in ra)
    vb = math.fsum((y - mb) ** 2 for y in rb)
    if va == 0 or vb == 0:
        return None
    return math.fsum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True)) / math.sqrt(va * vb)


def val_test_notes(results: Sequence[dict[str, Any]]) -> list[str]:
    """Report notes: per study, each tuned cell's validation objective beside its test value, and the
    rank correlation of the cells between the two."""
    rows = val_test_rows(results)
    notes = []
    for study in sorted({r.study for r in rows}):
        mine = [r for r in rows if r.study == study]
        cells = "; ".join(
            f"{r.cell} {r.validation:.2f}"
            + (f" ±{r.fold_std:.2f} over {r.folds} folds" if r.fold_std is not None else "")
            + f" vs {r.test:.2f}"
            for r in mine
        )
        rho = spearman([r.validation for r in mine], [r.test for r in mine])
        agree = f"Spearman ρ = {rho:.2f} over {len(mine)} cells" if rho is not None else "ρ: n/a (< 3 cells)"
        objective = OBJECTIVES[mine[0].objective].removeprefix("validation ")
        notes.append(
            f"validation vs test (study {study}; {objective}; test: mean over seeds): {cells}; {agree}"
        )
    return notes
