"""Compiled against eager training steps, per head, paired in one process (``--compile``, issue 29).

For each head the same random batch (``--batch`` captions of ``--words`` tokens, their videos of
``--frames`` frames, width ``--dim``) goes through the training step of ``vtrbench train``: the step
of :func:`vtrbench.runs.compiled.training_step` (forward + loss, backward), gradient clipping, AdamW
and the logit-scale clamp, as :func:`vtrbench.runs.train.fit` does. Two copies of the head train side
by side, one with ``--compile none`` (eager) and one with ``--mode``; after ``--warmup`` steps each
(the compiled one compiles on its first: *compile s*), ``--rounds`` rounds of ``--steps`` steps
alternate eager and compiled, and each figure is the median round (s/step). *eager / compiled* is
the speed-up.

*kernels/step* (CUDA only): ``torch.profiler`` over ``--steps`` steady steps, counting the kernel
launches the host asks for (runtime calls ``cudaLaunchKernel`` / ``cuLaunchKernel`` and their
variants, and ``cudaGraphLaunch``: a CUDA graph replay is one launch) and the device's kernel events.
On a CPU there are no kernel launches to count: the column says *not measured*.

Run: ``python benchmarks/compile_step.py --device cpu --heads meanp,seqtransf --batch 32 --dim 256``
(benchmarks/README.md, "Compiled training step"); ``benchmarks/gpu.sh`` runs it on CUDA.
"""

from __future__ import annotations

import argparse
import copy
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
from _common import machine_info, print_machine, print_table, write_json  # noqa: E402

from vtrbench.factory import create_head, create_loss  # noqa: E402
from vtrbench.runs.compiled import check_compile, training_step  # noqa: E402

NOT_MEASURED = "not measured (CPU: no kernel launches)"
LAUNCH_CALLS = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cudaGraphLaunch")


def random_batch(args: argparse.Namespace, device: torch.device) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    b, length, frames, d = args.batch, args.words, args.frames, args.dim
    eot = torch.randint(length // 2, length, (b,), generator=g)
    mask = torch.arange(length)[None, :] <= eot[:, None]
    text = {
        "tokens": torch.randn(b, length, d, generator=g),
        "token_mask": mask,
        "eot": eot,
        "noun_mask": mask & (torch.arange(length)[None, :] % 2 == 1),
        "verb_mask": mask & (torch.arange(length)[None, :] % 2 == 0),
    }
    video = {
        "frames": torch.randn(b, frames, d, generator=g),
        "frame_mask": torch.ones(b, frames, dtype=torch.bool),
    }
    return {k: v.to(device) for k, v in text.items()}, {k: v.to(device) for k, v in video.items()}


class Trainer:
    """One head and its optimiser, stepping as ``fit`` does."""

    def __init__(self, head: Any, mode: str, device: torch.device, loss: str) -> None:
        self.head = head.to(device).train()
        self.params = [p for p in head.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4)
        bf16 = device.type == "cuda"
        self.step_fn = training_step(head, create_loss(loss), 0.0, (device.type, bf16), mode)
        self.device = device

    def step(self, text: dict, video: dict) -> float:
        loss, _ = self.step_fn(text, video)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.head.clamp_logit_scale()
        return float(loss.detach())  # a host sync per step, as fit's loss.item()

    def timed(self, text: dict, video: dict, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step(text, video)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return (time.perf_counter() - t0) / steps


def kernels_per_step(trainer: Trainer, text: dict, video: dict, steps: int) -> tuple[float, float]:
    """(host launch calls, device kernel events) per step, from torch.profiler (CUDA only)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            trainer.step(text, video)
        torch.cuda.synchronize(trainer.device)
    events = prof.events()
    launches = sum(1 for e in events if e.name in LAUNCH_CALLS)
    kernels = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    return launches / steps, kernels / steps


def bench_head(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    options = {"init": "random"} if name in ("seqtransf", "camoe") else {}
    head = create_head(name, embed_dim=args.dim, **options)
    eager, compiled = (
        Trainer(head, "none", device, args.loss),
        Trainer(copy.deepcopy(head), args.mode, device, args.loss),
    )
    text, video = random_batch(args, device)
    t0 = time.perf_counter()
    compiled.step(text, video)  # compiles
    compile_s = time.perf_counter() - t0
    eager.timed(text, video, args.warmup)
    compiled.timed(text, video, max(args.warmup - 1, 1))
    e, c = [], []
    for _ in range(args.rounds):  # alternate, so that the machine's load falls on both alike
        e.append(eager.timed(text, video, args.steps))
        c.append(compiled.timed(text, video, args.steps))
    row: dict[str, Any] = {
        "head": name,
        "eager s/step": round(statistics.median(e), 5),
        f"{args.mode} s/step": round(statistics.median(c), 5),
        "eager / compiled": round(statistics.median(e) / statistics.median(c), 3),
        "compile s": round(compile_s, 1),
    }
    if device.type == "cuda":
        row["eager launches/step"], row["eager kernels/step"] = kernels_per_step(
            eager, text, video, args.steps
        )
        row["compiled launches/step"], row["compiled kernels/step"] = kernels_per_step(
            compiled, text, video, args.steps
        )
    else:
        row["kernels/step"] = NOT_MEASURED
    return row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heads", default="meanp,seqtransf,camoe,xpool")
    ap.add_argument(
        "--mode", default=None, help="torch.compile mode [default: reduce-overhead on CUDA, else default]"
    )
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--words", type=int, default=32)
    ap.add_argument("--loss", default="dsl")
    ap.add_argument("--steps", type=int, default=10, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.mode = args.mode or ("reduce-overhead" if args.device.startswith("cuda") else "default")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    check_compile(args.mode, args.device)  # no compiler (or Triton): one line, not a traceback here
    machine = machine_info(args.device)
    print_machine(machine)
    print(
        f"batch {args.batch}, {args.words} tokens, {args.frames} frames, width {args.dim}, loss {args.loss}, "
        f"mode {args.mode}; median of {args.rounds} alternating rounds of {args.steps} steps"
    )
    rows = []
    for h in args.heads.split(","):
        rows.append(bench_head(h, args, device))
        print("row", rows[-1], flush=True)  # each head as it finishes: a cut-off run keeps its rows
    columns = list(rows[0])
    print_table(
        f"compiled ({args.mode}) against eager training steps",
        columns,
        [[r[c] for c in columns] for r in rows],
    )
    out = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    if args.json is not None:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    from vtrbench.errors import VtrbenchError

    try:
        main()
    except VtrbenchError as e:
        sys.exit(f"error: {e}")
