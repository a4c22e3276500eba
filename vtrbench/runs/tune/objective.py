"""The tuning objective and the fold spread: plain Python, so that ``report`` can read them without
importing torch or the cache (``tests/report/test_report_io.py``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from vtrbench.errors import VtrbenchError

OBJECTIVES = {
    "rsum": "validation RSum (t2v + v2t R@1 + R@5 + R@10, raw similarity)",
    "r1": "validation t2v R@1 + v2t R@1 (raw similarity)",
}


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise VtrbenchError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return objective


def objective_text(objective: str, folds: int | None) -> str:
    """The objective as a study's identity records it."""
    where = f", mean over {folds} video-disjoint folds of the train split" if folds else ""
    return f"{OBJECTIVES[objective]} after the trial's last epoch{where}; a diverged trial scores 0"


def objective_of(val: dict[str, float], objective: str) -> float:
    """The objective from an epoch's validation metrics (``t2v/R@1``, ``v2t/R@1``, ``RSum``)."""
    if objective == "rsum":
        return float(val["RSum"])
    return float(val["t2v/R@1"]) + float(val["v2t/R@1"])


def spread(values: Sequence[float]) -> float | None:
    """Sample standard deviation of fold values (None for fewer than two)."""
    if len(values) < 2:
        return None
    m = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))
