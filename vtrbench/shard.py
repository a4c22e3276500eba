"""Work split across processes: ``--shard i/n`` (Slurm job arrays, separate machines) and torchrun.

vtrbench has no scheduler of its own. A *shard* ``i`` of ``n`` owns the units whose index ``k``
satisfies ``k mod n == i``: extraction chunks (the part files of a cache) or grid cells
(config x seed of ``ablate``). Under ``torchrun`` the shard is the process's ``RANK`` of
``WORLD_SIZE`` and its device is ``cuda:LOCAL_RANK`` when CUDA is present. The split is a pure
function of the unit's index, so reruns, second waves and a different number of shards all
fill exactly the gaps: finished parts and finished result files are skipped as always.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

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


def resolve(shard_option: str | None, device: str) -> tuple[Shard | None, str]:
    """The shard (from --shard or torchrun, not both) and this process's device."""
    explicit = parse_shard(shard_option)
    launched = from_torchrun()
    if explicit is not None and launched is not None:
        raise VtrbenchError("--shard cannot be combined with torchrun (the rank is the shard)")
    shard = explicit or launched
    if shard is not None and shard.torchrun and device.startswith("cuda") and ":" not in device:
        device = f"cuda:{shard.local_rank}"  # one GPU per process
    return shard, device


def barrier(shard: Shard | None) -> None:
    """Wait for every torchrun process (no-op otherwise). Long timeout: ranks may finish hours apart."""
    if shard is None or not shard.torchrun:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        # gloo needs no GPU and is only used for this barrier; the work itself is independent
        dist.init_process_group("gloo", timeout=timedelta(days=2))
    dist.barrier()


def finish(shard: Shard | None) -> None:
    if shard is not None and shard.torchrun:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
