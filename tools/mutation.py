"""Mutation testing of vtrbench's core code: mutmut 2's mutants, run by a forking runner.

    pip install 'mutmut==2.5.1'            # into your own venv (not a project dependency)
    python tools/mutation.py metrics       # or: losses evaluate train cache (several at once)
    python tools/mutation.py --all

Why not ``mutmut run``: it starts a new Python (and imports torch) for every mutant, which on
the 2 shared cores of the dev machine took 5-20 s per mutant before a single test ran. This
script generates exactly mutmut's mutants (``mutmut.list_mutations`` / ``mutmut.mutate``), but
imports torch, numpy, h5py and pytest once and runs each mutant's tests in a forked child
(``pytest.main`` with ``-x``), so a mutant costs only its tests.

It works on a scratch copy of the tree (``--workdir``, default /tmp/vtrbench-mutation-run): the
mutated file is written there, never in the checkout. Each target is mutated with its own tests
only (TARGETS below). ``train`` and ``cache`` are limited to the training loop / learning-rate
schedule and to the part assembly. Message texts are not mutated (mutation types ``string`` and
``fstring`` off): the tests pin the error type and the file/option an error names, not its
wording. Writes ``<workdir>/<target>.json`` (every mutant: line, diff, status) and prints a
summary with the survivors.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    paths: tuple[str, ...]
    tests: tuple[str, ...]
    scope: tuple[str, ...] = ()  # top-level functions / classes / Class.method; empty = whole file


TARGETS = {
    "metrics": Target(
        ("vtrbench/metrics.py", "vtrbench/tiecounts.py"),
        ("tests/core/test_metrics.py", "tests/core/test_metric_edges.py"),
    ),
    "losses": Target(
        ("vtrbench/losses/base.py", "vtrbench/losses/infonce.py", "vtrbench/losses/dsl.py"),
        ("tests/families/test_losses.py", "tests/core/test_metric_edges.py"),
    ),
    "evaluate": Target(
        # the evaluation is a package now: the ranking core and the post-processings are mutated
        ("vtrbench/eval/ranking.py", "vtrbench/eval/postprocess.py"),
        ("tests/eval/test_evaluate.py", "tests/eval/test_evaluate_params.py"),
    ),
    "train": Target(
        ("vtrbench/runs/train.py",),
        ("tests/runs/test_train_loop.py", "-k", "not val_fraction"),
        ("fit", "lr_lambda"),
    ),
    "cache": Target(
        # the cache is a package now: assembly and the part files are the mutated modules
        ("vtrbench/cache/assembly.py", "vtrbench/cache/parts.py"),
        ("tests/families/test_refusals.py", "-k", "assemble or manifest"),
        ("assemble", "_copy_parts", "missing_parts", "part_is_valid", "Manifest.chunks"),
    ),
}
TYPES_OFF = {"string", "fstring"}


class _Config:
    """The two attributes of mutmut.Config that mutant generation reads."""

    def __init__(self, types: set[str]) -> None:
        self.mutation_types_to_apply = types
        self.covered_lines_by_filename = None


def scope_lines(source: str, names: tuple[str, ...]) -> set[int] | None:
    """1-based line numbers inside the named definitions; None = the whole file."""
    if not names:
        return None
    keep: set[int] = set()
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in names:
            keep.update(range(node.lineno, node.end_lineno + 1))
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and f"{node.name}.{item.name}" in names:
                    keep.update(range(item.lineno, item.end_lineno + 1))
    if not keep:
        raise SystemExit(f"none of {names} found")
    return keep


def run_tests(args: list[str], timeout: float) -> tuple[str, float]:
    """pytest.main(args) in a forked child; 'killed' (tests failed), 'survived', or 'timeout'."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child: quiet, run, exit without cleanup handlers
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            import pytest

            code = int(pytest.main(args))
        except BaseException:
            code = 99
        os._exit(code)
    deadline = t0 + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - t0
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    if code == 0:
        return "survived", elapsed
    # 1 tests failed, 2 collection error (the mutated module does not import), 3 internal error,
    # 99 pytest itself raised, < 0 the child died of a signal: all mean the mutant was caught.
    if code in (1, 2, 3, 99) or code < 0:
        return "killed", elapsed
    return f"error({code})", elapsed  # 4 usage error, 5 no tests collected: not a verdict


def _summary(
    name: str,
    target: Target,
    types_off: set[str],
    every: int,
    base_s: float,
    mutants: list[dict],
    planned: int,
    *,
    complete: bool,
) -> dict:
    counted = [m for m in mutants if not m["status"].startswith("error")]
    killed = sum(m["status"] in ("killed", "timeout") for m in counted)
    return {
        "target": name,
        "paths": list(target.paths),
        "scope": list(target.scope),
        "tests": list(target.tests),
        "types_off": sorted(types_off),
        "sample_every": every,
        "complete": complete,  # False while running (or when stopped): `mutants` of `planned` done
        "planned": planned,
        "mutants": len(mutants),
        "killed": killed,
        "survived": sum(m["status"] == "survived" for m in counted),
        "errors": len(mutants) - len(counted),
        "score": round(100.0 * killed / max(1, len(counted)), 1),
        "baseline_s": round(base_s, 2),
        "results": mutants,
    }


def run_target(
    name: str, workdir: Path, types_off: set[str], previous: dict | None = None, every: int = 1
) -> dict:
    """Run every mutant of ``name``; with ``previous`` (an earlier run's JSON) only the mutants it
    saw survive are run again, and the others keep their earlier verdict."""
    import mutmut

    target = TARGETS[name]
    pytest_args = ["-x", "-q", "-p", "no:cacheprovider", *target.tests]
    base_status, base_s = run_tests(pytest_args, timeout=600)
    if base_status != "survived":
        raise SystemExit(f"{name}: the tests fail without any mutation ({base_status})")
    timeout = max(30.0, 10 * base_s)
    print(f"[{name}] baseline {base_s:.1f}s, per-mutant timeout {timeout:.0f}s", flush=True)
    types = set(mutmut.mutations_by_type) - types_off
    mutants: list[dict] = []
    planned = 0
    for rel in target.paths:
        path = workdir / rel
        original = path.read_text()
        keep = scope_lines(original, target.scope)
        ctx = mutmut.Context(source=original, filename=rel, config=_Config(types))
        ids = [m for m in mutmut.list_mutations(ctx) if keep is None or m.line_number + 1 in keep]
        ids = ids[::every]  # a systematic sample when the full run does not fit the time available
        planned += len(ids)
        earlier = {(m["file"], m["line"], tuple(m["diff"])): m for m in (previous or {}).get("results", [])}
        try:
            for k, mid in enumerate(ids):
                mutated, count = mutmut.mutate(mutmut.Context(source=original, mutation_id=mid, filename=rel))
                assert count == 1, mid
                lines = difflib.unified_diff(original.splitlines(), mutated.splitlines(), lineterm="", n=0)
                diff = [d for d in lines if d[:1] in "+-" and d[:3] not in ("+++", "---")]
                before = earlier.get((rel, mid.line_number + 1, tuple(diff)))
                if previous is not None and before is not None and before["status"] != "survived":
                    mutants.append(before)
                    continue
                path.write_text(mutated)
                status, secs = run_tests(pytest_args, timeout)
                line = mid.line_number + 1
                record = {"file": rel, "line": line, "diff": diff, "status": status, "s": round(secs, 2)}
                mutants.append(record)
                partial = _summary(name, target, types_off, every, base_s, mutants, planned, complete=False)
                (workdir / f"{name}.json").write_text(json.dumps(partial, indent=1))
                print(f"[{name}] {k + 1}/{len(ids)} {status} {secs:.0f}s", flush=True)
                if status == "survived":
                    print(f"[{name}] {k + 1}/{len(ids)} SURVIVED {rel}:{line}", *diff, sep="\n  ", flush=True)
        finally:
            path.write_text(original)
    summary = _summary(name, target, types_off, every, base_s, mutants, planned, complete=True)
    (workdir / f"{name}.json").write_text(json.dumps(summary, indent=1))
    print(
        f"[{name}] {summary['killed']} killed ({summary['score']} %), "
        f"{summary['survived']} survived, {summary['errors']} errors",
        flush=True,
    )
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)}")
    p.add_argument("--all", action="store_true")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/vtrbench-mutation-run"))
    p.add_argument("--types-off", default=",".join(sorted(TYPES_OFF)), help="mutmut types not generated")
    p.add_argument(
        "--rerun-survivors",
        type=Path,
        metavar="DIR",
        help="a folder with earlier <target>.json: run only the mutants that survived there",
    )
    p.add_argument("--every", type=int, default=1, help="run every N-th mutant only (a systematic sample)")
    a = p.parse_args()
    names = list(TARGETS) if a.all else a.targets
    if not names or set(names) - set(TARGETS):
        p.error(f"name targets among {', '.join(TARGETS)}, or use --all")
    work = a.workdir.resolve()
    rerun = a.rerun_survivors.resolve() if a.rerun_survivors is not None else None
    if rerun == work:
        p.error("--rerun-survivors must name another folder than --workdir (which is emptied first)")
    if work == ROOT or ROOT in work.parents:
        p.error("--workdir must be outside the checkout (mutated files are written there)")
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc"))
    os.chdir(work)
    sys.path.insert(0, str(work))
    os.environ["PYTHONPATH"] = str(work)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.dont_write_bytecode = True  # a mutated module must never be read back from a stale .pyc
    # The expensive imports happen once, here; vtrbench itself is imported by each child.
    import h5py  # noqa: F401
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import torch

    torch.set_num_threads(1)
    # torch.optim imports torch._dynamo on the first optimiser step: tens of seconds on a loaded
    # machine, paid by every child unless the parent does it once before forking.
    weight = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([weight])
    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    weight.grad = torch.ones(2)
    opt.step()
    assert "vtrbench" not in sys.modules
    types_off = {t for t in a.types_off.split(",") if t}
    for name in names:
        previous = None
        if a.rerun_survivors is not None:
            previous = json.loads((rerun / f"{name}.json").read_text())
        run_target(name, work, types_off, previous, a.every)


if __name__ == "__main__":
    main()
