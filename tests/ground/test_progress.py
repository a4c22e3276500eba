"""vtrbench.progress: plain progress lines for logs, driven by a fake clock (no test waits or reads
the wall clock).

What is pinned: a task's first line when it is added and its last when it completes; in between at
most one line per interval, only for tasks that moved since their last line; the numbers of a line
(done/total, percent, rate, elapsed, ETA) from the fake clock; a task of a run inside a grid
(``ends=False``) prints no first and last line of its own; ``VTRBENCH_PROGRESS_EVERY`` refused unless
it is a finite number >= 0; a terminal gets rich bars and a log gets lines.
"""

from __future__ import annotations

import io
import re
import threading

import pytest
from rich.console import Console
from rich.progress import Progress

from vtrbench import defaults
from vtrbench.errors import VtrbenchError
from vtrbench.progress import ENV_EVERY, LineProgress, make_progress, progress_every, scoped, stage


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0  # any origin: lines show differences only

    def __call__(self) -> float:
        return self.now


def lines_of(every: float, clock: FakeClock) -> tuple[LineProgress, list[str]]:
    out: list[str] = []
    return LineProgress(stage="extract", every=every, clock=clock, write=out.append), out


def test_a_line_shows_done_total_rate_elapsed_and_eta_from_the_clock() -> None:
    clock = FakeClock()
    bar, out = lines_of(10, clock)
    task = bar.add_task("videos", total=40, info="", unit="videos")
    assert out == ["[extract videos] 0/40 videos (0%) · elapsed 0:00:00 · ETA ?"]
    clock.now += 12.0
    bar.update(task, advance=6, info="87 frames/s")
    # 6 videos in 12 s: 0.5 videos/s, i.e. 2.0 s each; 34 left: 68 s
    assert (
        out[-1]
        == "[extract videos] 6/40 videos (15%) · 2.0 s each · elapsed 0:00:12 · ETA 0:01:08 · 87 frames/s"
    )
    clock.now += 3600 - 12
    bar.update(task, completed=40, info="")
    assert out[-1] == "[extract videos] 40/40 videos (100%) · 90.0 s each · elapsed 1:00:00"
    assert len(out) == 3


def test_lines_come_at_most_once_per_interval_while_something_moves() -> None:
    clock = FakeClock()
    bar, out = lines_of(10, clock)
    task = bar.add_task("train", total=120, info="", unit="steps")
    for _ in range(120):  # one step per 0.5 s: 60 s
        clock.now += 0.5
        bar.update(task, advance=1)
    # first (t=0), then the first update at or after each 10 s mark, then the last (t=60, 100%)
    done = [int(re.search(r"\] (\d+)/", line).group(1)) for line in out]
    assert done == [0, 20, 40, 60, 80, 100, 120]
    assert out[-1].startswith("[extract train] 120/120 steps (100%) · 2.0 steps/s · elapsed 0:01:00")


def test_no_line_for_a_task_that_did_not_move_and_none_before_the_interval() -> None:
    clock = FakeClock()
    bar, out = lines_of(10, clock)
    grid = bar.add_task("grid", total=3, info="", unit="runs")
    step = bar.add_task("train", total=1000, info="", unit="steps")
    clock.now += 9.9
    bar.update(step, advance=5)
    assert len(out) == 2  # the two first lines; 9.9 s < 10 s
    clock.now += 0.1
    bar.update(step, advance=5)
    # the interval is over: the moving task gets a line, the grid (unchanged since its first) none
    assert len(out) == 3 and out[-1].startswith("[extract train] 10/1000 steps (1%)")
    clock.now += 10
    bar.update(grid, info="meanp/dsl seed 0")  # a field that changed counts as a move
    assert [line.split("]")[0] for line in out[3:]] == ["[extract grid"]
    assert out[-1].endswith("· meanp/dsl seed 0")


def test_the_interval_counts_from_the_last_line_printed() -> None:
    clock = FakeClock()
    bar, out = lines_of(10, clock)
    clock.now += 8  # loading data before the first task: no line, and no line is "due" for it
    task = bar.add_task("train", total=100, info="", unit="steps")
    clock.now += 4  # 12 s after the display was made, 4 s after the last line
    bar.advance(task)
    assert len(out) == 1
    clock.now += 6
    bar.advance(task)
    assert len(out) == 2 and out[-1].startswith("[extract train] 2/100 steps (2%)")


@pytest.mark.parametrize(
    ("every", "expected"),
    [(0.0, 1 + 50), (1e12, 2)],  # 0: a line at every update; huge: the first and the last only
)
def test_zero_prints_every_update_and_a_huge_interval_only_the_ends(every: float, expected: int) -> None:
    clock = FakeClock()
    bar, out = lines_of(every, clock)
    task = bar.add_task("captions", total=50, info="", unit="captions")
    for _ in range(50):
        clock.now += 1.0
        bar.advance(task)
    assert len(out) == expected
    assert out[-1].startswith("[extract captions] 50/50 captions (100%)")


def test_tasks_of_a_run_inside_a_grid_print_no_first_and_last_line_and_are_removed() -> None:
    clock = FakeClock()
    bar, out = lines_of(10, clock)
    grid = bar.add_task("grid", total=2, info="", unit="runs")
    for run in range(2):
        with scoped(bar, f"meanp/infonce s{run}", ends=False) as view:
            task = view.add_task("train", total=4, unit="steps")
            for _ in range(4):
                clock.now += 4.0
                view.update(task, advance=1, info="epoch 1/1")
        bar.update(grid, advance=1)
    assert bar.task_ids == [grid]  # the runs' tasks are gone
    heads = [line.split("]")[0] + "]" for line in out]
    # grid first; the runs only at the 10 s marks (t=12 and t=28), never at their start or end
    assert heads == [
        "[extract grid]",
        "[extract meanp/infonce s0 train]",
        "[extract grid]",
        "[extract meanp/infonce s1 train]",
        "[extract grid]",
    ]
    assert out[1].startswith("[extract meanp/infonce s0 train] 3/4 steps (75%) · 4.0 s each")
    assert out[-1].startswith("[extract grid] 2/2 runs (100%) · 16.0 s each · elapsed 0:00:32")


def test_an_interrupted_task_says_where_it_stopped_and_a_complete_one_is_said_once() -> None:
    clock = FakeClock()
    bar, out = lines_of(1e9, clock)
    with bar:
        done = bar.add_task("meanp.infonce", total=5, completed=5, info="", unit="trials")
        task = bar.add_task("videos", total=10, info="", unit="videos")
        clock.now += 3
        bar.update(task, advance=4)
        bar.update(done, completed=5)  # a resumed study: already complete, said once
    assert out[0].startswith("[extract meanp.infonce] 5/5 trials (100%)")
    assert sum("meanp.infonce" in line for line in out) == 1
    assert out[-1].startswith(
        "[extract videos] 4/10 videos (40%) · 1.3 videos/s · elapsed 0:00:03 · ETA 0:00:04"
    )


def test_a_resumed_count_is_not_this_runs_rate() -> None:
    clock = FakeClock()
    bar, out = lines_of(0, clock)
    task = bar.add_task("cell", total=20, completed=10, info="", unit="trials")
    clock.now += 20
    bar.update(task, completed=12)
    assert "· 10.0 s each ·" in out[-1] and "ETA 0:01:20" in out[-1]  # 2 trials in 20 s, 8 left


@pytest.mark.parametrize("value", ["", "  "])
def test_the_interval_defaults_to_defaults_py(value: str) -> None:
    assert progress_every({}) == defaults.PROGRESS_EVERY
    assert progress_every({ENV_EVERY: value}) == defaults.PROGRESS_EVERY


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("2.5", 2.5), ("60", 60.0), ("1e12", 1e12)])
def test_the_interval_is_read_from_the_environment(value: str, seconds: float) -> None:
    assert progress_every({ENV_EVERY: value}) == seconds


@pytest.mark.parametrize("value", ["-1", "nan", "NaN", "inf", "-inf", "1e999", "ten", "10s", "0x10"])
def test_a_bad_interval_is_one_error_naming_the_variable(value: str) -> None:
    with pytest.raises(VtrbenchError, match=f"{ENV_EVERY}={re.escape(repr(value))}: expected"):
        progress_every({ENV_EVERY: value})


def test_a_terminal_gets_rich_bars_and_a_log_gets_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_EVERY, raising=False)
    log = Console(file=io.StringIO(), force_terminal=False, width=80)
    terminal = Console(file=io.StringIO(), force_terminal=True, width=80)
    assert isinstance(make_progress(log), LineProgress)
    assert isinstance(make_progress(terminal), Progress)
    quiet = make_progress(log, enabled=False)
    assert isinstance(quiet, Progress) and quiet.disable
    monkeypatch.setenv(ENV_EVERY, "-3")
    for console, enabled in ((terminal, True), (log, False)):  # on a terminal or quiet too: never ignored
        with pytest.raises(VtrbenchError, match=ENV_EVERY):
            make_progress(console, enabled=enabled)


def test_a_log_line_is_never_wrapped_at_the_consoles_width() -> None:
    buf = io.StringIO()
    log = Console(file=buf, force_terminal=False, width=40)
    clock = FakeClock()
    bar = LineProgress(log, stage="a/very/long/stage/name/that/goes/on", every=0, clock=clock)
    task = bar.add_task("train", total=10, info="", unit="steps")
    clock.now += 1
    bar.update(task, advance=1, info="epoch 1/5 loss 3.210 1234 pairs/s [not markup]")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and max(map(len, lines)) > 40
    assert lines[-1].endswith("epoch 1/5 loss 3.210 1234 pairs/s [not markup]")


def test_a_step_without_a_count_says_so_and_repeats_until_it_ends() -> None:
    # the repeated lines come from a thread that waits with `wait`: here a fake that returns "not
    # stopped yet" three times (advancing the fake clock by the interval) and then "stopped"
    clock = FakeClock()
    calls: list[float] = []
    exhausted = threading.Event()

    def wait(seconds: float) -> bool:
        calls.append(seconds)
        if len(calls) > 3:
            exhausted.set()
            return True
        clock.now += seconds
        return False

    buf = io.StringIO()
    log = Console(file=buf, force_terminal=False, width=30)
    with stage(log, "[extract] loading ViT-L-14 (openai) on cuda", every=20, clock=clock, wait=wait):
        assert exhausted.wait(timeout=120)  # a safety net only: the lines do not depend on time
    assert buf.getvalue().splitlines() == [
        "[extract] loading ViT-L-14 (openai) on cuda",
        "[extract] loading ViT-L-14 (openai) on cuda (still, 0:00:20)",
        "[extract] loading ViT-L-14 (openai) on cuda (still, 0:00:40)",
        "[extract] loading ViT-L-14 (openai) on cuda (still, 0:01:00)",
    ]
    assert calls == [20, 20, 20, 20]


def test_a_stage_prints_nothing_on_a_terminal_or_when_quiet_and_no_repeats_at_zero() -> None:
    def never(seconds: float) -> bool:
        raise AssertionError("no thread should wait")

    for console, enabled, every in (
        (Console(file=io.StringIO(), force_terminal=True), True, 10),
        (Console(file=io.StringIO(), force_terminal=False), False, 10),
        (Console(file=io.StringIO(), force_terminal=False), True, 0),
    ):
        with stage(console, "[data] reading split 9k", enabled=enabled, every=every, wait=never):
            pass
        said = console.file.getvalue()
        assert said == ("[data] reading split 9k\n" if every == 0 else "")


def test_a_step_longer_than_the_interval_still_gets_a_line_per_interval() -> None:
    # the display's thread waits with `wait`: a fake that advances the fake clock by what it is asked
    # to wait, twice, then says "stopped"; the work makes no update meanwhile (one long step)
    clock = FakeClock()
    calls: list[float] = []
    exhausted = threading.Event()

    def wait(seconds: float) -> bool:
        calls.append(seconds)
        if len(calls) > 2:
            exhausted.set()
            return True
        clock.now += seconds
        return False

    out: list[str] = []
    bar = LineProgress(every=10, clock=clock, write=out.append, wait=wait)
    bar.add_task("grid", total=2, info="", unit="runs")
    task = bar.add_task("meanp/dsl s0 train", total=100, info="", unit="steps", ends=False)
    clock.now += 4
    bar.update(task, advance=5)  # 4 s after the last line: none due yet
    with bar:
        assert exhausted.wait(timeout=120)  # a safety net only: the lines do not depend on time
    assert calls == [6, 10, 10]  # the first wait: until 10 s after the grid's first line
    assert out[1:] == [
        # 10 s: the task that moved (5 steps in 10 s, 95 left)
        "[meanp/dsl s0 train] 5/100 steps (5%) · 2.0 s each · elapsed 0:00:10 · ETA 0:03:10",
        # 20 s: nothing moved; the newest running task again, its rate and ETA as of now
        "[meanp/dsl s0 train] 5/100 steps (5%) · 4.0 s each · elapsed 0:00:20 · ETA 0:06:20",
    ]
