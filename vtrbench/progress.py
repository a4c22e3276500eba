"""Progress that a log can read: rich bars on a terminal, plain lines everywhere else.

rich draws its bars by rewriting the screen; written to a file (a Slurm log, ``| tee``, ``nohup``) a
transient bar leaves nothing and a kept one appears once, when it is finished. So where the console
is not a terminal, :class:`LineProgress` prints plain lines instead::

    [meanp/infonce s0 train] 120/300 steps (40%) · 12.3 steps/s · elapsed 0:00:10 · ETA 0:00:14 · epoch 2/5

a task's first line when it is added, its last one when it completes, and in between, once
``VTRBENCH_PROGRESS_EVERY`` seconds (``defaults.PROGRESS_EVERY``) have passed since the last line, one
line per task that moved since its own last line. Lines are printed from the updates themselves (no
thread), so a step that takes longer than the interval delays the next line; the clock is a
parameter, so tests drive it without waiting.

Both displays take the calls vtrbench makes on rich's ``Progress``: ``add_task(description,
total=..., **fields)``, ``update(task, advance=, completed=, total=, description=, **fields)``,
``advance``, ``remove_task``, ``task_ids`` and the context manager. Two fields mean something here:
``unit`` (what is counted, for the rate) and ``info`` (free text after the numbers).

Ground layer: imports only :mod:`vtrbench.defaults` and :mod:`vtrbench.errors` (and rich).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from vtrbench import defaults
from vtrbench.errors import VtrbenchError

ENV_EVERY = "VTRBENCH_PROGRESS_EVERY"


def progress_every(environ: Mapping[str, str] | None = None) -> float:
    """Seconds between two progress lines: ``VTRBENCH_PROGRESS_EVERY`` when set, else the default.

    0 prints a line at every update; a value that is not a finite number >= 0 is one VtrbenchError.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_EVERY)
    if raw is None or not raw.strip():
        return defaults.PROGRESS_EVERY
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise VtrbenchError(
            f"{ENV_EVERY}={raw!r}: expected the seconds between progress lines, a number >= 0 "
            f"(0: every update; default {defaults.PROGRESS_EVERY:g})"
        )
    return value


def is_terminal(console: Any) -> bool:
    """True when ``console`` (a rich Console; None: stderr) draws on a terminal (rich's own test,
    which honours FORCE_COLOR and TTY_COMPATIBLE)."""
    if console is None:
        stream = sys.stderr
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError):
            return False
    return bool(getattr(console, "is_terminal", False))


def clock_text(seconds: float) -> str:
    """``h:mm:ss`` (hours grow past 99 as needed)."""
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _count(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def _rate(per_second: float, unit: str) -> str:
    if per_second >= 1:
        digits = 0 if per_second >= 100 else 1
        return f"{per_second:.{digits}f} {unit or 'items'}/s"
    return f"{1 / per_second:.1f} s each"


@dataclass
class LineTask:
    """One task of a :class:`LineProgress` (rich's Task, the parts a line needs)."""

    id: int
    description: str
    total: float | None
    completed: float
    started: float  # clock time of add_task
    base: float  # completed at add_task (a resumed count is not this run's rate)
    unit: str = ""
    ends: bool = True  # print the first and the last line
    fields: dict[str, Any] = field(default_factory=dict)
    shown: tuple[Any, ...] | None = None  # what the last line showed
    closed: bool = False  # its last line is out
    finished_at: float | None = None  # clock time it completed: its elapsed time stops there

    @property
    def finished(self) -> bool:
        return self.total is not None and self.completed >= self.total

    def state(self) -> tuple[Any, ...]:
        return (self.completed, self.total, self.description, tuple(sorted(map(str, self.fields.items()))))


class LineProgress:
    """rich ``Progress``'s interface, printing plain lines (see the module note).

    Entered as a context manager, a thread also keeps the log from going silent while one step runs
    longer than the interval (an epoch's validation, a slow ranking pass, a study's bookkeeping): when
    a line is due and none came, it prints the tasks that moved, or else the newest running one.
    ``wait(seconds) -> stopped`` is how that thread waits (by default on an event set by ``stop``);
    tests pass their own with a fake ``clock``.
    """

    def __init__(
        self,
        console: Any = None,
        *,
        stage: str = "",
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.every = progress_every() if every is None else float(every)
        self.stage = stage
        self.clock = clock
        self._write = write or _writer(console)
        self._tasks: dict[int, LineTask] = {}
        self._next_id = 0
        self._due = clock() + self.every
        self._lock = threading.RLock()  # the thread and the work print and read tasks in turn
        self._stopped = threading.Event()
        self._wait = wait or self._stopped.wait
        self._thread: threading.Thread | None = None

    # rich's context manager and start/stop
    def __enter__(self) -> LineProgress:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.every > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="vtrbench-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """The last line of each task that moved since its last one (an interrupted loop says where)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            for task in self._tasks.values():
                if task.ends and not task.closed and task.state() != task.shown:
                    self._line(task, self.clock())
                    task.closed = True

    def _beat(self) -> None:
        while True:
            with self._lock:
                delay = max(self._due - self.clock(), 0.0)
            if self._wait(min(max(delay, 0.01), threading.TIMEOUT_MAX)) or self._stopped.is_set():
                return
            with self._lock:
                now = self.clock()
                if now >= self._due:
                    self._snapshot(now, quiet=True)
                    self._due = max(self._due, now + self.every)  # also when nothing runs: no spinning

    def _snapshot(self, now: float, *, quiet: bool = False) -> None:
        """A line for each task that moved since its last one; ``quiet`` (nothing printed for an
        interval): the newest running task when none moved."""
        moved = [t for t in self._tasks.values() if not t.closed and t.state() != t.shown]
        if not moved and quiet:
            moved = [t for t in self._tasks.values() if not t.closed and not t.finished][-1:]
        for task in moved:
            self._line(task, now)

    @property
    def task_ids(self) -> list[int]:
        with self._lock:
            return list(self._tasks)

    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: float = 0,
        visible: bool = True,
        **fields: Any,
    ) -> int:
        with self._lock:
            now = self.clock()
            task = LineTask(
                id=self._next_id,
                description=str(description),
                total=None if total is None else float(total),
                completed=float(completed),
                started=now,
                base=float(completed),
                unit=str(fields.pop("unit", "") or ""),
                ends=bool(fields.pop("ends", True)),
                fields=fields,
            )
            if task.finished:
                task.finished_at = now
            self._tasks[task.id] = task
            self._next_id += 1
            if task.ends:
                self._line(task, now)
                task.closed = task.finished  # added complete (a resumed study): that line was its last
            return task.id

    def update(
        self,
        task_id: int,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        visible: bool | None = None,
        refresh: bool = False,
        **fields: Any,
    ) -> None:
        with self._lock:
            task = self._tasks[task_id]
            if total is not None:
                task.total = float(total)
            if completed is not None:
                task.completed = float(completed)
            if advance is not None:
                task.completed += float(advance)
            if description is not None:
                task.description = str(description)
            fields.pop("unit", None)
            fields.pop("ends", None)
            task.fields.update(fields)
            now = self.clock()
            if task.finished and task.finished_at is None:
                task.finished_at = now
            if task.finished and task.ends and not task.closed:
                self._line(task, now)
                task.closed = True
            if now >= self._due:
                self._snapshot(now)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def remove_task(self, task_id: int) -> None:
        with self._lock:
            task = self._tasks.pop(task_id)
            if task.ends and not task.closed and task.state() != task.shown:
                self._line(task, self.clock())

    def line(self, task: LineTask, now: float) -> str:
        """The text of ``task``'s line at clock time ``now``."""
        name = " ".join(p for p in (self.stage, task.description) if p)
        unit = f" {task.unit}" if task.unit else ""
        parts = [
            f"[{name}] " + _count(task.completed) + (f"/{_count(task.total)}" if task.total else "") + unit
        ]
        if task.total:
            parts[0] += f" ({100 * min(task.completed / task.total, 1.0):.0f}%)"
        elapsed = max((now if task.finished_at is None else task.finished_at) - task.started, 0.0)
        done = task.completed - task.base
        if done > 0 and elapsed > 0:
            parts.append(_rate(done / elapsed, task.unit))
        parts.append(f"elapsed {clock_text(elapsed)}")
        if task.total and not task.finished:
            left = task.total - task.completed
            parts.append(f"ETA {clock_text(left * elapsed / done)}" if done > 0 and elapsed > 0 else "ETA ?")
        info = str(task.fields.get("info", "") or "").strip()
        if info:
            parts.append(info)
        return " · ".join(parts)

    def _line(self, task: LineTask, now: float) -> None:
        task.shown = task.state()
        self._due = now + self.every  # a line was just printed: the next one is due an interval later
        self._write(self.line(task, now))


@contextmanager
def stage(
    console: Any,
    text: str,
    *,
    enabled: bool = True,
    every: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], bool] | None = None,
) -> Iterator[None]:
    """Say ``text`` in a log when a step without a count starts (loading a model, reading a split),
    then ``text (still, h:mm:ss)`` every interval until the block ends: a model that loads or
    downloads for minutes does not leave the log silent. Nothing on a terminal or when not
    ``enabled``; an interval of 0 prints the first line only.

    The repeated lines come from a thread that waits with ``wait(seconds) -> stopped`` (by default
    an event set when the block ends); tests pass their own ``wait`` and ``clock``.
    """
    if not enabled or is_terminal(console):
        yield
        return
    write = _writer(console)
    seconds = progress_every() if every is None else float(every)
    write(text)
    done = threading.Event()
    pause = wait or done.wait
    started = clock()

    def beat() -> None:
        while not pause(min(seconds, threading.TIMEOUT_MAX)) and not done.is_set():
            write(f"{text} (still, {clock_text(clock() - started)})")

    thread = threading.Thread(target=beat, name="vtrbench-progress", daemon=True) if seconds > 0 else None
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        done.set()
        if thread is not None:
            thread.join()


def _writer(console: Any) -> Callable[[str], None]:
    if console is None:

        def write(text: str) -> None:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

        return write
    # soft_wrap: a log line is never broken (or cut) at the console's width
    return lambda text: console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)


class RateColumn(ProgressColumn):
    """rich's recent speed of a task, in its ``unit`` per second (as the plain lines say it)."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("")
        return Text(_rate(speed, str(task.fields.get("unit", "") or "")))


def columns() -> tuple[Any, ...]:
    """The bar's columns on a terminal: description, bar, done/total, rate, ``info``, elapsed time."""
    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )


def make_progress(
    console: Any = None,
    *,
    enabled: bool = True,
    transient: bool = False,
    stage: str = "",
    clock: Callable[[], float] | None = None,
) -> Any:
    """A progress display for ``console``: rich bars on a terminal, :class:`LineProgress` elsewhere,
    a disabled rich Progress when ``enabled`` is false. Every task must carry an ``info`` field (the
    bar's text column shows it)."""
    every = progress_every()  # refused here, on a terminal or quiet too: never silently ignored
    if not enabled:
        return Progress(*columns(), console=console, disable=True)
    if is_terminal(console):
        return Progress(*columns(), console=console, transient=transient)
    return LineProgress(console, stage=stage, every=every, clock=clock or time.monotonic)


class TaskView:
    """A display seen by one part of the work (a run inside a grid, a trial inside a tuning cell):
    its tasks get ``prefix`` in their description, and with ``ends=False`` print no first and last
    line of their own on a :class:`LineProgress` (the enclosing task's lines say that a run started
    and ended). :func:`scoped` removes them when the part is over."""

    def __init__(self, display: Any, prefix: str = "", *, ends: bool = True) -> None:
        self.display = display
        self.prefix = prefix
        self.ends = ends
        self.added: list[Any] = []

    def add_task(self, description: str, **kw: Any) -> Any:
        kw.setdefault("info", "")
        if isinstance(self.display, LineProgress):
            kw.setdefault("ends", self.ends)
        else:
            kw.pop("ends", None)
        task = self.display.add_task(" ".join(p for p in (self.prefix, description) if p), **kw)
        self.added.append(task)
        return task

    def update(self, task: Any, **kw: Any) -> None:
        self.display.update(task, **kw)

    def advance(self, task: Any, advance: float = 1) -> None:
        self.display.advance(task, advance)

    def remove_task(self, task: Any) -> None:
        self.display.remove_task(task)
        self.added.remove(task)


@contextmanager
def scoped(display: Any, prefix: str = "", *, ends: bool = True) -> Iterator[TaskView]:
    """A :class:`TaskView` of ``display`` whose tasks are removed when the block ends (on a terminal
    a finished run's bars make room for the next run's)."""
    view = TaskView(display, prefix, ends=ends)
    try:
        yield view
    finally:
        for task in list(view.added):
            view.remove_task(task)
