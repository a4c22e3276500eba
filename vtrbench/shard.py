"""Work split across processes: ``--shard i/n`` (Slurm job arrays, separate machines) and torchrun.

vtrbench has no scheduler of its own. A *shard* ``i`` of ``n`` owns the units whose index ``k``
satisfies ``k mod n == i``: extraction chunks (the part files of a cache) or grid cells
(config x seed of ``ablate``). Under ``torchrun`` the shard is the process's ``RANK`` of
``WORLD_SIZE`` and its device is ``cuda:LOCAL_RANK`` when CUDA is present. The split is a pure
function of the unit's index, so reruns, second waves and a different number of shards all
fill exactly the gaps: finished parts and finished result files are skipped as always.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn, TypeVar

import torch.distributed as dist

from vtrbench.errors import VtrbenchError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    torchrun: bool = False  # True when taken from torchrun's environment (there is a process group)
    local_rank: int = 0

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, k: int) -> bool:
        return k % self.count == self.index

    def take(self, items: Sequence[T]) -> list[T]:
        """The items whose position this shard owns (the order is kept)."""
        return [x for k, x in enumerate(items) if self.owns(k)]


_SHARD = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")


def parse_shard(value: str | None, option: str = "--shard") -> Shard | None:
    """``"i/n"`` (0 <= i < n, ASCII digits, spaces around them ignored) -> Shard; None -> None.

    A bad value is one line naming the option. An empty value is refused, not read as "no
    shard": ``--shard $SLURM_ARRAY_TASK_ID/4`` with the variable unset must not quietly make every
    array task run the whole job.
    """
    if value is None:
        return None
    text = str(value)
    if not text.strip():
        raise VtrbenchError(
            f"{option} is empty ({text!r}); give i/n (e.g. 0/4) or leave the option out to run unsharded"
        )
    m = _SHARD.fullmatch(text)
    if m is None:
        raise VtrbenchError(
            f"{option} takes i/n with whole numbers (e.g. 0/4, or $SLURM_ARRAY_TASK_ID/4), got {text!r}"
        )
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise VtrbenchError(f"{option} {text.strip()}: need 0 <= i < n (shards are numbered from 0)")
    return Shard(i, n)


def from_torchrun() -> Shard | None:
    """The shard of this process when started by torchrun (WORLD_SIZE > 1), else None."""
    world = os.environ.get("WORLD_SIZE")
    if world is None or "RANK" not in os.environ or int(world) <= 1:
        return None
    return Shard(
        int(os.environ["RANK"]), int(world), torchrun=True, local_rank=int(os.environ.get("LOCAL_RANK", 0))
    )


def refuse(shard: Shard | None, message: str) -> NoReturn:
    """Raise ``message`` as a VtrbenchError; under torchrun only once, from rank 0.

    For an error every rank finds alike (the options are the same for all): each rank printing it
    and failing made torchrun list every rank in its ``ChildFailedError`` summary. Rank 0 also puts
    the line into torchrun's error file, so that the summary's root cause names it; the other ranks
    leave at once, quietly and without a failure of their own (torchrun still exits non-zero).
    """
    if shard is None or not shard.torchrun:
        raise VtrbenchError(message)
    if shard.index != 0:
        raise SystemExit(0)
    # A rank still starting when rank 0 fails is stopped by the agent (SIGTERM) and listed as a
    # failure of its own: let this machine's other ranks reach the same check and leave first.
    _wait_for_siblings(SIBLING_WAIT_S)
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if error_file:
        try:
            with open(error_file, "w", encoding="utf-8") as fh:
                # the layout torch's own @record writes (a plain string makes the agent warn twice)
                line = f"error: {message}"
                extra = {"py_callstack": line, "timestamp": str(int(time.time()))}
                json.dump({"message": {"message": line, "extraInfo": extra}}, fh)
        except OSError:
            pass  # the error line on stderr is what matters
    raise VtrbenchError(message)


SIBLING_WAIT_S = 30.0


def _siblings() -> list[int]:
    """Living processes with the same parent as this one (under torchrun: this machine's other ranks)."""
    me, parent = os.getpid(), os.getppid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[0] != "Z" and int(fields[1]) == parent:
            found.append(int(name))
    return found


def _wait_for_siblings(seconds: float) -> None:
    if not sys.platform.startswith("linux"):
        return
    deadline = time.monotonic() + seconds
    while _siblings() and time.monotonic() < deadline:
        time.sleep(0.1)


def die_with_agent() -> None:
    """Ask Linux to kill this process when its parent, torchrun's agent, dies (even by ``kill -9``).

    Without it the ranks of a killed agent waited at the gloo barrier (2-day timeout), ~1 GB each,
    10 minutes later. Killing is safe: finished parts are on disk (written atomically) and a rerun
    resumes them. The agent starts ranks from its main thread, whose exit is what the kernel
    watches. A peer rank that dies is the living agent's business: it stops the other ranks.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1 and not _init_is_torchrun():
        os._exit(1)  # the agent died before the request took effect: we were re-parented to init


def _init_is_torchrun() -> bool:
    """In a container torchrun itself may be PID 1: then a parent of 1 is the living agent."""
    try:
        with open("/proc/1/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return True  # cannot tell: do not risk killing a healthy rank
    return b"torch" in cmdline


def resolve(shard_option: str | None, device: str) -> tuple[Shard | None, str]:
    """The shard (from --shard or torchrun, not both) and this process's device."""
    launched = from_torchrun()
    if launched is not None:
        die_with_agent()
    if shard_option is not None and launched is not None:
        refuse(launched, "--shard cannot be combined with torchrun (the rank is the shard): drop --shard")
    explicit = parse_shard(shard_option)
    shard = explicit or launched
    if shard is not None and shard.torchrun and device.startswith("cuda") and ":" not in device:
        device = f"cuda:{shard.local_rank}"  # one GPU per process
    return shard, device


def barrier(shard: Shard | None) -> None:
    """Wait for every torchrun process (no-op otherwise). Long timeout: ranks may finish hours apart."""
    if shard is None or not shard.torchrun:
        return
    if not dist.is_initialized():
        # gloo needs no GPU and is only used for this barrier; the work itself is independent
        dist.init_process_group("gloo", timeout=timedelta(days=2))
    dist.barrier()


def finish(shard: Shard | None) -> None:
    if shard is not None and shard.torchrun:
        if dist.is_initialized():
            dist.destroy_process_group()
