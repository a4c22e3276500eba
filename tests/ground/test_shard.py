"""Scale-out on existing engines: ``--shard i/n`` (Slurm arrays) and torchrun, for extract and ablate.

The reference is the single-process run: a sharded extraction must assemble into the same
cache (every dataset bit for bit, attributes but the creation time), and a sharded grid must
write exactly the same result files with the same metrics.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.extract.test_extract import _start_child, assert_same_cache
from vtrbench.shard import Shard, parse_shard

REPO = Path(__file__).resolve().parents[2]


def _torchrun(
    argv: list[str], cwd: Path, nproc: int = 2, timeout: float = 240
) -> subprocess.CompletedProcess:
    with socket.socket() as s:  # a free port for the rendezvous (loopback only)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.update(COLUMNS="1000", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", f"--nproc-per-node={nproc}",
           "--rdzv-backend", "c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
           "-m", "vtrbench", *map(str, argv)]  # fmt: skip
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_parse_shard() -> None:
    assert parse_shard("1/4") == Shard(1, 4)
    assert parse_shard(None) is None
    assert Shard(1, 3).take(list("abcdefg")) == ["b", "e"]
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(Exception, match="--shard"):
            parse_shard(bad)


def test_two_shards_assemble_into_the_single_process_cache(
    run_cli: Callable[..., Any],
    synth_cache: Path,
    synth_extract_argv: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "sharded.h5"
    first = run_cli(*synth_extract_argv(out, "--shard", "0/2"))
    assert first.code == 0, first.err
    assert "shard 0/2 done" in first.err and not out.exists()
    again = run_cli(*synth_extract_argv(out, "--shard", "0/2"))  # a finished shard does nothing
    assert again.code == 0 and "0 videos encoded now" in again.err, again.err
    early = run_cli(*synth_extract_argv(out, "--assemble"))
    assert early.code == 2 and "videos-00001.h5 (shard 1/2)" in early.err and "missing" in early.err
    last = run_cli(*synth_extract_argv(out, "--shard", "1/2"))  # the last shard assembles
    assert last.code == 0, last.err
    assert out.is_file() and not Path(str(out) + ".parts").exists()
    assert_same_cache(out, synth_cache)
    done = run_cli(*synth_extract_argv(out, "--shard", "1/2"))
    assert done.code == 0 and "already complete" in done.err


def test_assemble_needs_parts_and_refuses_foreign_ones(
    run_cli: Callable[..., Any], synth_extract_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "nothing.h5"
    r = run_cli(*synth_extract_argv(out, "--assemble"))
    assert r.code == 2 and "no extraction parts" in r.err and "--shard i/n" in r.err
    r = run_cli(*synth_extract_argv(out, "--shard", "0/2", "--overwrite"))
    assert r.code == 2 and "--overwrite cannot be combined with --shard" in r.err
    # a part from another extraction (another config) planted among this one's parts
    other = tmp_path / "other.h5"
    assert run_cli(*synth_extract_argv(other, "--shard", "1/2", "--max-words", "16")).code == 0
    assert run_cli(*synth_extract_argv(out, "--shard", "0/2")).code == 0
    planted = sorted(Path(str(other) + ".parts").glob("videos-*.h5"))  # shard 1/2's chunks 1, 3, 5
    assert [p.name for p in planted] == ["videos-00001.h5", "videos-00003.h5", "videos-00005.h5"]
    for part in planted:
        (Path(str(out) + ".parts") / part.name).write_bytes(part.read_bytes())
    foreign = planted[0]
    r = run_cli(*synth_extract_argv(out, "--assemble"))
    assert r.code == 2 and foreign.name in r.err and "another extraction" in r.err, r.err


@pytest.mark.slow
def test_a_killed_shard_resumes(
    run_cli: Callable[..., Any],
    synth_cache: Path,
    synth_extract_argv: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "killed.h5"
    parts = Path(str(out) + ".parts")
    child = _start_child(synth_extract_argv(out, "--shard", "1/2"), pause=0.5, log=tmp_path / "shard1.log")
    deadline = time.monotonic() + 120
    try:
        while not (parts / "videos-00001.h5").exists():
            assert child.poll() is None, (tmp_path / "shard1.log").read_text()
            assert time.monotonic() < deadline, "no part file appeared"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert not (parts / "videos-00005.h5").exists()  # the shard's last chunk was not reached
    r = run_cli(*synth_extract_argv(out, "--shard", "1/2"))
    assert r.code == 0 and "resumed" in r.err, r.err
    r = run_cli(*synth_extract_argv(out, "--shard", "0/2"))
    assert r.code == 0, r.err
    assert_same_cache(out, synth_cache)


@pytest.mark.slow
def test_torchrun_two_processes_extract_the_single_process_cache(
    synth_cache: Path, synth_extract_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "torchrun.h5"
    proc = _torchrun(synth_extract_argv(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "shard 0/2" in proc.stderr and "shard 1/2" in proc.stderr
    assert_same_cache(out, synth_cache)


def _grid_results(folder: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted(folder.rglob("*.json")):
        r = json.loads(p.read_text())
        out[p.name] = {"metrics": r["metrics"], "history": [h["loss"] for h in r["history"]]}
    return out


@pytest.mark.slow
def test_sharded_and_torchrun_grids_write_the_single_process_results(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path
) -> None:
    grid = ["ablate", "--cache", synth_cache, "--heads", "meanp", "--losses", "infonce,dsl", "--seeds", "0,1",
            "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--quiet"]  # fmt: skip
    single = tmp_path / "single"
    assert run_cli(*grid, "--results", single).code == 0
    want = _grid_results(single)
    assert len(want) == 4

    sharded = tmp_path / "sharded"
    for i in range(3):  # more shards than the loss axis, fewer than the cells
        r = run_cli(*grid, "--results", sharded, "--shard", f"{i}/3")
        assert r.code == 0, r.err
        assert f"shard {i}/3: {len(range(i, 4, 3))} of them" in r.err
    assert _grid_results(sharded) == want

    ranks = tmp_path / "torchrun"
    proc = _torchrun([*grid, "--results", ranks], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _grid_results(ranks) == want


def test_a_shard_keeps_a_parts_folder_another_shard_is_starting(
    run_cli: Callable[..., Any],
    synth_cache: Path,
    synth_extract_argv: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """Shards of a job array start together: a parts folder without a manifest yet may be another
    shard's, writing its manifest right now; a shard must not delete it (found by
    benchmarks/shard_scaling.py, where the second shard failed with "cannot write manifest.json")."""
    out = tmp_path / "racing.h5"
    other = Path(str(out) + ".parts") / "manifest.json.4242.tmp"  # the other shard, mid-write
    other.parent.mkdir()
    other.write_text("{}")
    r = run_cli(*synth_extract_argv(out, "--shard", "1/2"))
    assert r.code == 0, r.err
    assert other.exists()
    other.unlink()
    assert run_cli(*synth_extract_argv(out, "--shard", "0/2")).code == 0
    assert_same_cache(out, synth_cache)
