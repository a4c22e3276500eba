"""The fault suite's fast set (benchmarks/faults): every injected fault ends as a clear error or is handled.

The full set (kills at random moments, full disks, large inputs) runs with
``python -m benchmarks.faults``; its figures are recorded in README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.faults.__main__ import all_cases, run_cases, summarise
from benchmarks.faults.core import BAD_KINDS, Context

QUICK = {f"{c.area}/{c.name}": c for c in all_cases() if c.quick}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Context:
    """The cases' shared fixtures (datasets, caches), made lazily once per process: each case is its
    own test, so pytest-xdist's workers split the cases instead of each running all of them."""
    return Context(tmp_path_factory.mktemp("faults"))


def test_the_fast_set_is_not_empty() -> None:
    assert len(QUICK) >= 1


@pytest.mark.parametrize("name", list(QUICK))
def test_fault_is_a_clear_error_or_handled(shared: Context, name: str) -> None:
    ((_, outcome, _),) = run_cases([QUICK[name]], shared.root, ctx=shared)
    assert outcome.kind not in BAD_KINDS, f"{name}: {outcome.kind}: {outcome.detail}"


def test_summary_counts_every_case(tmp_path: Path) -> None:
    from benchmarks.faults.core import Case, Outcome

    cases = [
        Case("t", "ok", lambda p, c: Outcome("handled")),
        Case("t", "boom", lambda p, c: (_ for _ in ()).throw(RuntimeError("x"))),
        Case("t", "kill", lambda p, c: Outcome("handled", kill=True, identical_resume=True)),
    ]
    s = summarise(run_cases(cases, tmp_path))
    assert (s["cases"], s["handled"], s["traceback"], s["kills"], s["identical_resumes"]) == (3, 2, 1, 1, 1)
