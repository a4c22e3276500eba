"""How many CPU threads torch uses for a run, and why (recorded in each result's provenance).

torch starts one OpenMP thread per core. When other processes already keep the cores busy,
that is much slower than fewer threads for the small per-step matrices of these heads: every
parallel region waits for its slowest thread, and a thread without a core stalls the rest
(benchmarks/threads.py: meanp training 8.9x slower with 2 threads than with 1 on a loaded
2-core machine). The default therefore takes the cores that are free when the run starts:
``cores - round(1-minute load average)``, at least 1 and at most torch's default; an idle
machine keeps torch's default (idle, 2 threads were 1.4-1.7x faster than 1 here; under load 1
was 3-15x faster than 2, so a half-busy core already counts as busy). ``--threads N`` (train,
eval, ablate; ``threads`` in a grid file or RunSpec) overrides it. The thread count does not
change what is computed, only its speed (and float summation order in some kernels), so it is
not part of a run's config hash.
"""

from __future__ import annotations

import os
from typing import Any

import torch

_chosen: dict[str, Any] = {}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def auto_threads(default: int, cores: int, load: float | None) -> tuple[int, str]:
    """(threads, rule) for a machine with ``cores`` usable cores at 1-minute ``load``."""
    if load is None:
        return default, f"torch default ({default}; load unknown)"
    free = max(1, min(default, cores - round(load)))
    return free, f"auto: {cores} cores, load {load:.2f} -> {free}"


def set_threads(requested: int | None) -> dict[str, Any]:
    """Set torch's intra-op threads for this run: ``requested`` or :func:`auto_threads`.

    Returns (and remembers for :func:`threads_provenance`) ``{"threads": n, "threads_rule": why}``.
    """
    if not _chosen:
        _chosen["torch_default"] = torch.get_num_threads()
    if requested is not None:
        n, rule = int(requested), "--threads"
    else:
        n, rule = auto_threads(int(_chosen["torch_default"]), _cores(), _load())
    torch.set_num_threads(n)
    _chosen.update(threads=n, threads_rule=rule)
    return {"threads": n, "threads_rule": rule}


def threads_provenance() -> dict[str, Any]:
    """What a result records: the threads in use, and the rule that chose them (if vtrbench did)."""
    out: dict[str, Any] = {"threads": torch.get_num_threads()}
    if _chosen.get("threads") == out["threads"]:
        out["threads_rule"] = _chosen["threads_rule"]
    return out
