"""Who may write a cache and its parts: flock-based locks beside the output file.

Shards (each its own chunks) write side by side; an unsharded run or an assembly writes alone.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vtrbench.errors import VtrbenchError
from vtrbench.shard import Shard

# File descriptors of the locks this process holds: forked decode workers close their copies, so
# that a worker outliving its parent can never keep the cache locked.
LOCK_FDS: set[int] = set()


# A lock held by another process is retried this long: a shard that releases its lock takes it
# exclusively for a moment to see whether it may remove the file (see release_lock).
LOCK_WAIT_S = 1.0


def take_lock(lock_path: Path, exclusive: bool, busy: str) -> int:
    """An fd holding an flock on ``lock_path`` (exclusive or shared); VtrbenchError ``busy`` if held."""
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            # O_CLOEXEC: a program exec'd from here does not inherit the lock either
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise VtrbenchError(f"cannot create the lock file {lock_path} ({e.strerror})") from None
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                raise VtrbenchError(busy) from None
            time.sleep(0.05)
            continue
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            LOCK_FDS.add(fd)
            return fd
        # the previous holder removed the file between our open and flock: lock the new one
        os.close(fd)
        if time.monotonic() > deadline:
            raise VtrbenchError(busy)


def release_lock(fd: int, lock_path: Path, exclusive: bool) -> None:
    """Drop a lock; the file is removed only by a process that holds it alone: a shared holder that
    removed it while another shard still ran would let an unsharded run lock a fresh file beside it."""
    try:
        if not exclusive:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                exclusive = True
            except BlockingIOError:
                pass  # another shard still holds it: the last one out removes the file
        if exclusive:
            lock_path.unlink(missing_ok=True)
    finally:
        LOCK_FDS.discard(fd)
        os.close(fd)


def close_inherited_locks() -> None:
    """In a forked decode worker: close the copies of the parent's lock fds (the parent keeps the
    lock; a worker's copy would keep it after the parent died)."""
    for fd in list(LOCK_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    LOCK_FDS.clear()


@contextmanager
def output_lock(output: Path, shard: Shard | None = None) -> Iterator[None]:
    """Who may write ``output`` and its parts: shards (each its own chunks) side by side, or else one
    process alone (an unsharded run, an assembly).

    Every shard holds ``<cache>.lock`` shared plus its own ``<cache>.shardIofN.lock`` exclusively;
    an unsharded run or an assembly holds ``<cache>.lock`` exclusively. So an unsharded run started
    beside a running shard (it would delete or overwrite the shard's parts) is refused in one line,
    and so is a shard started beside it.
    """
    base = Path(str(output) + ".lock")
    if shard is None:
        busy = (
            f"another `vtrbench extract` (a shard, an assembly or an unsharded run) is writing {output} "
            f"(lock {base}); wait for it to finish"
        )
        fd = take_lock(base, True, busy)
        try:
            yield
        finally:
            release_lock(fd, base, True)
        return
    shard_lock = Path(f"{output}.shard{shard.index}of{shard.count}.lock")
    fd = take_lock(
        base,
        False,
        f"another `vtrbench extract` is writing {output} unsharded or assembling it (lock {base}); "
        "wait for it to finish",
    )
    try:
        own = take_lock(
            shard_lock,
            True,
            f"another `vtrbench extract` is writing shard {shard} of {output} (lock {shard_lock})",
        )
        try:
            yield
        finally:
            release_lock(own, shard_lock, True)
    finally:
        release_lock(fd, base, False)
