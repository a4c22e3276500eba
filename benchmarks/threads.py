"""Thread count vs speed of small heads: training steps and evaluation at 1, 2, ... torch threads.

Under load (other processes on the cores), torch's default of one OpenMP thread per core
can make small heads slower than one thread: every parallel region waits for its slowest
thread, and a thread that loses its core stalls the others. This script measures it on the
machine it runs on, in one process, alternating the thread counts (``torch.set_num_threads``)
round by round so that a change of load hits every count alike:

- *train meanp* / *train xpool*: :func:`vtrbench.runs.train.fit`, one epoch over ``--steps``
  batches of ``--batch`` captions of an MSR-VTT-shaped split (12 frames, 32 tokens, D = 512,
  fp16 at rest; ``benchmarks/train.py``'s ``build_split``);
- *eval meanp*: :func:`vtrbench.runs.scoring.evaluate_head` on ``--eval-n`` captions x videos (raw);
- *eval xpool*: the same for the pairwise xpool head.

Each figure is the median of ``--rounds`` rounds; the ratio column is that count's time over
one thread's. Run: ``python benchmarks/threads.py`` (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import torch  # noqa: E402
from _common import machine_info, print_machine, print_notes, print_table, write_json  # noqa: E402
from train import build_split, head_slice  # noqa: E402


def _fit_seconds(head_name: str, data: Any, batch: int) -> float:
    from vtrbench.config import TrainConfig
    from vtrbench.factory import create_head
    from vtrbench.runs.train import fit

    config = TrainConfig(cache_hash="benchmark", head=head_name, loss="infonce", epochs=1, batch_size=batch)
    torch.manual_seed(0)
    head = create_head(head_name, embed_dim=int(data.video["frames"].shape[-1]))
    t0 = time.perf_counter()
    fit(head, data, config, seed=0, device="cpu")
    return time.perf_counter() - t0


def _eval_seconds(head_name: str, data: Any) -> float:
    from vtrbench.factory import create_head
    from vtrbench.runs.scoring import evaluate_head

    torch.manual_seed(0)
    head = create_head(head_name, embed_dim=int(data.video["frames"].shape[-1]))
    t0 = time.perf_counter()
    evaluate_head(head, data, postprocessing=("raw",))
    return time.perf_counter() - t0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to compare")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="training steps per fit")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--eval-n", type=int, default=1000, help="captions = videos in the eval split")
    ap.add_argument("--videos", type=int, default=1000, help="training split videos (20 captions each)")
    ap.add_argument("--tasks", default="train meanp,eval meanp,train xpool,eval xpool")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--json", type=Path, default=None)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    counts = [int(x) for x in args.threads.split(",") if x.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    info = machine_info("cpu")
    print_machine(info)
    split = build_split(args.videos, 20, 12, 32, args.dim)
    train = head_slice(split, args.steps * args.batch)
    test = build_split(args.eval_n, 1, 12, 32, args.dim, seed=1)
    run = {
        "train": lambda head: _fit_seconds(head, train, args.batch),
        "eval": lambda head: _eval_seconds(head, test),
    }
    default_threads = torch.get_num_threads()
    times: dict[tuple[str, int], list[float]] = {}
    loads = [os.getloadavg()[0]]
    for r in range(args.rounds + 1):  # round 0 warms up (allocator, first-call costs)
        for task in tasks:
            kind, head = task.split()
            for n in counts if r % 2 else counts[::-1]:
                torch.set_num_threads(n)
                seconds = run[kind](head)
                if r:
                    times.setdefault((task, n), []).append(seconds)
        loads.append(os.getloadavg()[0])
    torch.set_num_threads(default_threads)
    results = [
        {
            "task": task,
            "threads": n,
            "median_s": statistics.median(times[task, n]),
            "all_s": times[task, n],
            "vs_one_thread": statistics.median(times[task, n]) / statistics.median(times[task, counts[0]]),
        }
        for task in tasks
        for n in counts
    ]
    print_table(
        f"Threads (torch default here: {default_threads}; {args.rounds} alternated rounds, median)",
        ["task", "threads", "median s", f"÷ {counts[0]} thread(s)"],
        [[r["task"], r["threads"], r["median_s"], r["vs_one_thread"]] for r in results],
    )
    print_notes(
        [
            f"1-min load average during the run: {min(loads):.2f} .. {max(loads):.2f} "
            f"on {os.cpu_count()} cores",
            f"train: {args.steps} steps of {args.batch} captions; eval: {args.eval_n} x {args.eval_n}, raw",
        ]
    )
    payload = {"benchmark": "threads", "machine": info, "setup": vars(args), "loads": loads}
    payload["results"] = results
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
