"""Extraction scaling: one process against N shards (torchrun, and --shard i/n run side by side).

Measured in one run, on the same rendered synthetic videos and model (random weights):

- ``1 process``: ``vtrbench extract`` (decoding in the main process, ``--workers 0``);
- ``torchrun N``: ``torchrun --nproc-per-node N -m vtrbench extract`` with the same arguments
  (each rank encodes chunks k mod N == rank; rank 0 assembles after a barrier);
- ``N x --shard``: N ``vtrbench extract --shard i/N`` processes started together (a Slurm array
  on one machine); the last to finish assembles.

Every run must produce the same cache (checked: every dataset equal). The ratio is wall time of
one process / wall time of N: on a machine with C cores, N <= C processes can approach N x.

Run: ``python benchmarks/shard_scaling.py [--videos 48] [--nproc 2] [--model vtrbench-tiny]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run(cmds: list[list[str]]) -> float:
    """Start the commands together, wait for all; wall seconds."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in cmds]  # fmt: skip
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"failed: {' '.join(p.args)}\n{err[-2000:]}")
    return time.perf_counter() - t0


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=48)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--model", default="vtrbench-tiny")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vtrbench-shard-"))
    try:
        py = [sys.executable, "-m", "vtrbench"]
        data = work / "data"
        subprocess.run([*py, "synth", str(data), "--videos", str(args.videos), "--size", "96", "--quiet"],
                       env=_env(), check=True, capture_output=True)  # fmt: skip
        base = ["extract", "--dataset", "synthetic", "--annotations", str(data), "--model", args.model,
                "--pretrained", "none", "--device", args.device, "--workers", "0", "--chunk-size", "4",
                "--quiet"]  # fmt: skip
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
                    f"--nproc-per-node={args.nproc}", "--rdzv-backend", "c10d",
                    f"--rdzv-endpoint=127.0.0.1:{port}", "-m", "vtrbench"]  # fmt: skip
        rows = []
        t1 = _run([[*py, *base, "--output", str(work / "one.h5")]])
        rows.append(("1 process", t1))
        t2 = _run([[*torchrun, *base, "--output", str(work / "torchrun.h5")]])
        rows.append((f"torchrun {args.nproc}", t2))
        t3 = _run([[*py, *base, "--output", str(work / "shards.h5"), "--shard", f"{i}/{args.nproc}"]
                   for i in range(args.nproc)])  # fmt: skip
        rows.append((f"{args.nproc} x --shard", t3))
        ref = _datasets(work / "one.h5")
        for name in ("torchrun.h5", "shards.h5"):
            other = _datasets(work / name)
            same = all(np.array_equal(ref[k], other[k], equal_nan=ref[k].dtype.kind == "f") for k in ref)
            assert sorted(other) == sorted(ref) and same, name
        print(f"extraction scaling: {args.videos} synthetic videos, {args.model}, {args.device}, "
              f"{os.cpu_count()} cores; caches identical: yes")  # fmt: skip
        print(f"{'run':16s} {'wall s':>8s} {'speed-up':>9s}")
        for name, t in rows:
            print(f"{name:16s} {t:8.1f} {t1 / t:9.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
