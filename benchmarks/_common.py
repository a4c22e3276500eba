"""Shared helpers of the benchmark scripts: machine info, timing, peak memory, tables, JSON.

Peak memory is the process's resident set high-water mark (``VmHWM`` in
``/proc/self/status``), which :func:`reset_peak_rss` rewinds to the current RSS by
writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0). No psutil needed. Where
that file is not writable the peak cannot be rewound and is reported as None.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

MiB = 1024 * 1024
GiB = 1024 * MiB


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, load, torch, GPU, date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "memory_gib": _total_memory_gib(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "device": device,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _total_memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) * 1024 / GiB, 1)
    except OSError:
        pass
    return None


def print_machine(info: dict[str, Any]) -> None:
    load = info.get("load_average")
    parts = [
        f"date {info['date_utc']}",
        f"cpu {info['cpu']} ({info['cores']} cores, torch threads {info['torch_threads']})",
        f"memory {info['memory_gib']} GiB",
        f"load average {' '.join(str(x) for x in load) if load else 'n/a'}",
        f"python {info['python']}, torch {info['torch']}, device {info['device']}"
        + (f" ({info['gpu']})" if info.get("gpu") else ""),
        f"command: {info['command']}",
    ]
    print("\n".join(f"# {p}" for p in parts))


# ------------------------------------------------------------------ timing


def sync(device: str | torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock times include it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def timed(fn: Callable[[], Any], device: str | torch.device = "cpu") -> tuple[float, Any]:
    """``(seconds, result)`` of one call, the device synchronised before and after."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def alternating_medians(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each of ``runs`` over ``repeats`` rounds, the order reversed every other
    round, so that a change of load or a warm cache hits every run alike."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


# ------------------------------------------------------------------ memory


def rss_bytes() -> int:
    """Current resident set size of this process."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Resident set high-water mark since the start or the last :func:`reset_peak_rss`."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Rewind the high-water mark to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _status_kib(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


class PeakMemory:
    """Context manager: peak RSS above the RSS at entry, and the CUDA allocator's peak on a GPU.

    ``rss_above_start`` (bytes) is None when the high-water mark cannot be rewound.
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.rss_above_start: int | None = None
        self.start_rss = 0
        self.peak_rss = 0
        self.cuda_peak: int | None = None
        self._resettable = False

    def __enter__(self) -> PeakMemory:
        self.start_rss = rss_bytes()
        self._resettable = reset_peak_rss()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_rss = peak_rss_bytes()
        if self._resettable:
            self.rss_above_start = max(0, self.peak_rss - self.start_rss)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.cuda_peak = int(torch.cuda.max_memory_allocated(self.device))


# ------------------------------------------------------------------ output


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers with ``digits`` significant digits (no exponent below 1e6); None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value != value:  # NaN
        return "nan"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10 ** (digits - 1):
        return f"{value:.0f}"
    decimals = digits - 1 - int(f"{magnitude:e}".split("e")[1])
    return f"{value:.{max(decimals, 0)}f}"


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print (and return) a Markdown table, so that the output pastes into a README as is."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    text = "\n".join(
        [
            f"\n{title}\n",
            line([str(c) for c in columns]),
            "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *(line(r) for r in cells),
        ]
    )
    print(text, flush=True)
    return text


def print_notes(notes: Sequence[str]) -> None:
    for n in notes:
        print(f"- {n}")


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, sort_keys=True, default=_json_default) + "\n")
    print(f"\nraw numbers written to {path}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def check_row(label: str, value: float | None, target: float, *, at_most: bool = False) -> list[Any]:
    """A row of a targets table: label, value, target, verdict."""
    return [
        label,
        value,
        f"{'<=' if at_most else '>='} {target}",
        target_verdict(value, target, at_most=at_most),
    ]


def target_verdict(value: float | None, target: float, *, at_most: bool = False) -> str:
    """'PASS' / 'MISS (by x%)' for a ratio against a target (>= target, or <= with at_most)."""
    if value is None:
        return "n/a"
    ok = value <= target if at_most else value >= target
    if ok:
        return "pass"
    return f"MISS by {abs(value - target) / target * 100:.0f}%"


#: ``HEAD+TAG`` in a benchmark's ``--heads``: HEAD with these head options (issue 26: ``meanp+emcl`` is
#: meanp with EMCL's training module, as ``--head-option emcl=true`` spells it)
HEAD_VARIANTS: dict[str, dict[str, Any]] = {"emcl": {"emcl": True}}


def head_variant(name: str) -> tuple[str, str, dict[str, Any]]:
    """``"meanp+emcl"`` -> ``("meanp", "emcl", {"emcl": True})``; a plain head -> ``(head, "", {})``."""
    base, *tags = name.split("+")
    unknown = [t for t in tags if t not in HEAD_VARIANTS]
    if unknown:
        raise SystemExit(
            f"--heads {name}: unknown variant {unknown[0]!r} (known: {', '.join(HEAD_VARIANTS)})"
        )
    return base, "+".join(tags), {k: v for t in tags for k, v in HEAD_VARIANTS[t].items()}


def needs_patch_tokens(names: Sequence[str]) -> bool:
    """Whether a head of ``names`` (variants allowed) declares that it reads the cache's patch tokens
    (``requires``, e.g. ucofia): the demo cache is then made with them (``--patch-tokens``)."""
    from vtrbench.heads.base import HEADS

    return any("patches" in getattr(HEADS.get(head_variant(n)[0]), "requires", ()) for n in names)
