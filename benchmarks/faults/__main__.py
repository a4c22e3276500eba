"""Run the fault suite and print what happened: ``python -m benchmarks.faults [--quick] [--area A]``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from benchmarks.faults.core import BAD_KINDS, KINDS, Case, Context, Outcome


def all_cases() -> list[Case]:
    """Every ``cases()`` of every ``*_cases`` module beside this file, in name order."""
    found: list[Case] = []
    pkg = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(pkg)]), key=lambda m: m.name):
        if info.name.endswith("_cases"):
            module = importlib.import_module(f"benchmarks.faults.{info.name}")
            found.extend(module.cases())
    names = [f"{c.area}/{c.name}" for c in found]
    dupes = [n for n, k in Counter(names).items() if k > 1]
    if dupes:
        raise SystemExit(f"duplicate fault case names: {dupes}")
    return found


class CaseHung(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise CaseHung()


def run_cases(
    cases: list[Case], root: Path, progress: bool = False, limit_s: int = 300, ctx: Context | None = None
) -> list[tuple[Case, Outcome, float]]:
    """Run each case in its own folder; a case still running after ``limit_s`` is a failure (hung).
    ``ctx``: shared fixtures from an earlier call (default: a new set under ``root``)."""
    ctx = ctx if ctx is not None else Context(root)
    rows = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    for i, case in enumerate(cases):
        folder = root / case.area / case.name.replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        signal.alarm(limit_s)
        try:
            outcome = case.run(folder, ctx)
        except CaseHung:
            outcome = Outcome("traceback", f"hung: still running after {limit_s} s")
        except BaseException:  # noqa: BLE001 - an exception in the case itself escaped vtrbench's handling
            outcome = Outcome("traceback", traceback.format_exc().strip().splitlines()[-1][:200])
        finally:
            signal.alarm(0)
        rows.append((case, outcome, time.perf_counter() - t0))
        if progress:
            print(f"[{i + 1}/{len(cases)}] {case.area}/{case.name}: {outcome.kind}", file=sys.stderr)
    signal.signal(signal.SIGALRM, previous)
    return rows


def summarise(rows: list[tuple[Case, Outcome, float]]) -> dict[str, int]:
    counts = Counter(o.kind for _, o, _ in rows)
    summary = {"cases": len(rows), **{k: counts.get(k, 0) for k in KINDS}}
    summary["kills"] = sum(o.kill for _, o, _ in rows)
    summary["identical_resumes"] = sum(bool(o.identical_resume) for _, o, _ in rows)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="only the fast set (what CI runs)")
    ap.add_argument("--area", action="append", help="only these areas (repeatable)")
    ap.add_argument("--json", type=Path, help="also write every outcome to this file")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cases = [c for c in all_cases() if (c.quick or not args.quick) and (not args.area or c.area in args.area)]
    t0 = time.perf_counter()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        rows = run_cases(cases, args.keep, progress=True)
    else:
        with tempfile.TemporaryDirectory(prefix="vtrbench-faults-") as tmp:
            rows = run_cases(cases, Path(tmp), progress=True)
    summary = summarise(rows)
    for case, outcome, _ in rows:
        if outcome.kind in BAD_KINDS:
            print(f"  {outcome.kind:15s} {case.area}/{case.name}: {outcome.detail}")
    by_area = Counter(c.area for c, _, _ in rows)
    print("areas: " + ", ".join(f"{a} {n}" for a, n in sorted(by_area.items())))
    print(
        "cases tried {cases}, clear errors {clear_error}, handled {handled}, tracebacks {traceback}, "
        "silently wrong {silently_wrong}, lost {lost}, kills {kills}, identical resumes "
        "{identical_resumes}".format(**summary)
        + f" ({time.perf_counter() - t0:.0f} s)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "summary": summary,
                    "cases": [
                        {"area": c.area, "name": c.name, "kind": o.kind, "detail": o.detail, "seconds": s}
                        for c, o, s in rows
                    ],
                },
                indent=1,
            )
        )
    return 1 if any(summary[k] for k in BAD_KINDS) else 0


if __name__ == "__main__":
    sys.exit(main())
