"""The price of a fair comparison (issue 29 item 2): each head's training step against its compute
floor, its kernels per step, and a stated comparison projected to CPU and GPU hours.

Per head (``--heads``), at a stated shape (``--batch`` 128, ``--dim`` 512, ``--frames`` 12,
``--words`` 32; ``--small`` for a smoke run), on random features shaped like MSR-VTT (a caption
fills 8-22 of the 32 token positions, a video 10-12 of its 12 frames, 20 captions per video, as
``scale.py``), in one process:

- *s/step*: :func:`vtrbench.runs.train.fit` itself (gather and cast of the batch, the head, the loss
  ``--loss``, backward, gradient clipping, AdamW, scheduler) for ``--steps`` steps, the loop's own
  time (``fit``'s per-epoch seconds); one warm-up call, then ``--repeats`` rounds in which the
  heads take turns (order reversed every other round) and each call is followed by a probe of the
  fp32 matrix product speed (``--batch * --words`` x ``--dim`` times ``--dim`` x ``--dim``): load
  changes on a shared machine hit the heads and the probe alike. Medians.
- *forward FLOPs*: ``torch.utils.flop_counter.FlopCounterMode`` over ``training_logits`` + the loss
  on one batch, with hand counts for what it misses: LSTM layers (``aten.mkldnn_rnn_layer`` on CPU,
  ``aten._cudnn_rnn`` on CUDA): 2·T·B·4H·(D + H) forward, twice that backward. Elementwise work
  is not counted (by design of the counter): the floor is the matrix products.
- *floor* = 3 x forward FLOPs / the probe's speed measured next to the head's own steps (the
  usual backward ≈ 2 x forward convention); *step / floor* = s/step / floor. Also shown: the FLOPs
  the counter sees in forward + backward (*counted fwd+bwd*); frozen inputs need no gradient, so
  this is usually below 3 x forward, and *step / counted* is the stricter ratio.
- *ops/step*: aten operators dispatched per training step that do work (views and empty
  allocations left out), counted with a ``TorchDispatchMode`` as the difference between a
  3-step and a 1-step ``fit`` (steady-state steps only). **A proxy for CUDA kernel launches**: an
  operator may launch several kernels (or none, or a fused one) on a GPU. On CPU, AdamW and
  gradient clipping run one tensor at a time; on CUDA both default to the ``foreach``
  implementation, so the *GPU proxy* column swaps their CPU counts for their ``foreach`` counts
  (measured on the head's own parameters).

The projection (``--project-heads`` x ``--losses`` x (``--trials`` x ``--epochs`` +
``--seeds`` x ``--epochs``) x ``--captions``; defaults: the MSR-VTT 9k comparison of the issue,
4 heads x 2 losses x (40 x 10 + 3 x 10) epochs of 180,000 captions) multiplies the measured
per-step figures by the number of steps: CPU thread-hours (this machine, ``--threads`` 1), GPU
hours at ``--gpu-fraction`` of each of ``--gpu-peaks`` (dense TFLOP/s, default H100 SXM bf16 989
and fp32 67) and launch overhead at ``--launch-us`` per operator. Each (head, loss) cell costs the
head's measured step (the loss is a (B, B) matrix; its own FLOPs and ops are printed).

*After multi-fidelity* is a **projection**: trials cost ``--trial-fraction`` of a full trial's
caption-epochs on average, the final seeds stay full. The default 0.25 is textbook successive halving
with eta = 3 over budgets 1/9, 1/3, 1 of 40 trials: 27 stop at 1/9, 9 at 1/3, 4 run in full:
(27/9 + 9/3 + 4) / 40 = 0.25. The *multi-fidelity, measured* row uses ``--measured-fraction``
instead, whose default :data:`MEASURED_FRACTION` is the trained caption-epochs of ``tune --fidelity
data,epochs`` over those of full-fidelity tuning as ``benchmarks/fidelity.py`` measured them (its
pooled "multi / full"; the command and its cells are in the constant's comment).

``--vs REV`` also times ``--vs-heads`` (wti, meanp) as they were at git revision REV, in the same
rounds (paired), with REV's FLOP count and its ratio to today's floor.

Run: ``python benchmarks/comparison_cost.py`` (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import torch  # noqa: E402
from _common import machine_info, print_machine, print_notes, print_table, write_json  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

CAPTIONS_PER_VIDEO = 20
SMALL = {"batch": 16, "dim": 32, "frames": 4, "words": 12, "steps": 2, "repeats": 1, "min_seconds": 0.0}
#: at most this many epochs of --steps steps per timed call of a cheap head
MAX_EPOCHS = 100
#: operators that allocate without running a kernel
NO_KERNEL = frozenset({"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided"})


# ------------------------------------------------------------------ inputs


def synthetic_split(n_captions: int, args: argparse.Namespace, seed: int = 0) -> Any:
    """An in-memory training split of ``n_captions`` random captions (fp16 at rest, as a loaded cache):
    8-22 valid token positions (SOT .. EOT), 10-12 valid frames, noun / verb masks, 20 captions per video."""
    from vtrbench.runs.data import SplitData

    g = torch.Generator().manual_seed(seed)
    n_videos = max(1, -(-n_captions // CAPTIONS_PER_VIDEO))
    words, frames, dim = args.words, args.frames, args.dim
    i = torch.arange(n_captions)
    eot = torch.clamp(7 + i % 15, max=words - 1)
    token_mask = torch.arange(words)[None] <= eot[:, None]
    inside = token_mask.clone()
    inside[:, 0] = False
    inside[i, eot] = False
    roles = (i[:, None] + torch.arange(words)[None]) % 4
    v = torch.arange(n_videos)
    count = torch.clamp(1 + v % frames, min=max(1, frames - 2))
    frame_mask = torch.arange(frames)[None] < count[:, None]
    text = {
        "tokens": (torch.randn(n_captions, words, dim, generator=g) * token_mask[..., None]).half(),
        "token_mask": token_mask,
        "eot": eot,
        "noun_mask": inside & (roles == 0),
        "verb_mask": inside & (roles == 1),
    }
    video = {
        "frames": (torch.randn(n_videos, frames, dim, generator=g) * frame_mask[..., None]).half(),
        "frame_mask": frame_mask,
    }
    rows = i.numpy()
    return SplitData("train", video, text, i // CAPTIONS_PER_VIDEO, v.numpy(), rows)


def first_captions(split: Any, n: int) -> Any:
    """The split's first ``n`` captions (views), every video kept."""
    text = {k: t[:n] for k, t in split.text.items()}
    return dataclasses.replace(
        split, text=text, text_video=split.text_video[:n], text_rows=split.text_rows[:n]
    )


def one_batch(head: Any, split: Any, batch: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The first training batch as ``fit`` builds it (the head's text reduction, gather, cast)."""
    from vtrbench.runs.data import take, text_for

    data = text_for(head, split)
    idx = torch.arange(batch)
    cpu = torch.device("cpu")
    return take(data.text, idx, cpu), take(data.video, data.text_video.index_select(0, idx), cpu)


# ------------------------------------------------------------------ counting


def _lstm_flops(input_shape: Any, *weights: Any, out_shape: Any = None, **_: Any) -> int:
    """aten.mkldnn_rnn_layer(input, w_ih, w_hh, ...): 2 · T · B · (|w_ih| + |w_hh|) forward."""
    w_ih, w_hh = weights[0], weights[1]
    return 2 * input_shape[0] * input_shape[1] * (w_ih[0] * w_ih[1] + w_hh[0] * w_hh[1])


def _lstm_backward_flops(*args: Any, out_shape: Any = None, **_: Any) -> int:
    """aten.mkldnn_rnn_layer_backward(input, w_ih, w_hh, ...): input and weight gradients, 2 x forward."""
    return 2 * _lstm_flops(*args)


def _cudnn_lstm_flops(input_shape: Any, weights: Any, *_: Any, out_shape: Any = None, **__: Any) -> int:
    """aten._cudnn_rnn(input, [w_ih, w_hh, b_ih, b_hh], ...) of one layer: as ``_lstm_flops``."""
    return _lstm_flops(input_shape, weights[0], weights[1])


HAND_COUNTS: dict[Any, Callable[..., int]] = {
    torch.ops.aten.mkldnn_rnn_layer: _lstm_flops,
    torch.ops.aten.mkldnn_rnn_layer_backward: _lstm_backward_flops,
    torch.ops.aten._cudnn_rnn: _cudnn_lstm_flops,
}


def flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=HAND_COUNTS)


class OpCounter(TorchDispatchMode):
    """Counts the aten operators dispatched that do work: views and empty allocations are left out."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.syncs = 0
        self.dispatched = 0  # views and allocations included

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        self.dispatched += 1
        if not func.is_view and name not in NO_KERNEL:
            self.count += 1
            self.syncs += name == "_local_scalar_dense"
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], Any]) -> int:
    with OpCounter() as counter:
        fn()
    return counter.count


def step_flops(head: Any, text: dict, video: dict, loss_fn: Any) -> tuple[int, int]:
    """(forward FLOPs, forward + backward FLOPs) of one training step's head and loss."""
    with flop_counter() as fwd:
        logits, _ = head.training_logits(text, video)
        loss = loss_fn(logits.float())
    with flop_counter() as both:
        logits, _ = head.training_logits(text, video)
        loss = loss_fn(logits.float())
        loss.backward()
    head.zero_grad(set_to_none=True)
    return fwd.get_total_flops(), both.get_total_flops()


def median_seconds(fn: Callable[[], Any], reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def optimizer_costs(head: Any, config: Any) -> dict[str, float]:
    """Operators of one AdamW step and one gradient clipping on the head's parameters, one tensor at a
    time (CPU's default) and ``foreach`` (CUDA's default), after a first step has made AdamW's state;
    and the seconds of the CPU's AdamW step (median of 5). The parameters are restored afterwards."""
    params = [p for p in head.parameters() if p.requires_grad]
    out: dict[str, float] = {}
    for foreach in (False, True):
        saved = [p.detach().clone() for p in params]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        opt = torch.optim.AdamW(params, lr=config.lr, foreach=foreach)
        opt.step()
        key = "foreach" if foreach else "single"
        out[f"adamw_{key}"] = count_ops(opt.step)
        out[f"clip_{key}"] = count_ops(
            lambda f=foreach: torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=f)
        )
        if not foreach:
            out["adamw_single_s"] = median_seconds(opt.step)
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
                p.grad = None
    return out


def gather_seconds(head: Any, split: Any, batch: int) -> float:
    """Seconds to gather and cast one batch as ``fit`` does (median of 5)."""
    from vtrbench.runs.data import take, text_for

    data = text_for(head, split)
    idx = torch.randperm(data.n_texts, generator=torch.Generator().manual_seed(0))[:batch]
    cpu = torch.device("cpu")
    return median_seconds(lambda: (take(data.text, idx, cpu), take(data.video, data.text_video[idx], cpu)))


def loss_costs(losses: list[str], batch: int) -> dict[str, dict[str, int]]:
    """FLOPs and operators of each loss alone, forward + backward, on a (batch, batch) logit matrix."""
    from vtrbench.factory import create_loss

    out = {}
    for name in losses:
        logits = torch.randn(batch, batch, requires_grad=True)
        fn = create_loss(name)
        with flop_counter() as flops:
            ops = count_ops(lambda fn=fn, logits=logits: fn(logits).backward())
        out[name] = {"ops": ops, "flops": flops.get_total_flops()}
    return out


# ------------------------------------------------------------------ heads, today's and at a git revision


#: the modules a built-in head's code is made of besides its own file, loaded at --vs REV too
HEAD_HELPERS = ("vtrbench/heads/_layers.py", "vtrbench/heads/_common.py")


def _source_at(rev: str, path: str) -> str:
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True)
    if shown.returncode != 0:
        raise SystemExit(f"--vs {rev}: cannot read {path} there: {shown.stderr.strip()}")
    return shown.stdout


def head_class_at(rev: str, name: str) -> type:
    """The head class of ``vtrbench/heads/<name>.py`` as it was at git revision ``rev``, with the
    shared head modules (:data:`HEAD_HELPERS`) of that revision, loaded beside today's: nothing is
    registered (the registry keeps today's heads) and today's modules are back in place afterwards."""
    import vtrbench.heads.base as base

    sources = [(path, _source_at(rev, path)) for path in (*HEAD_HELPERS, f"vtrbench/heads/{name}.py")]
    tag = "".join(c if c.isalnum() else "_" for c in rev)
    real_register, saved = base.register_head, {}
    base.register_head = lambda _name: lambda cls: cls  # type: ignore[assignment]
    try:
        for path, source in sources:
            dotted = path.removesuffix(".py").replace("/", ".")
            mod = types.ModuleType(f"_vtrbench_at_{tag}.{dotted}")
            mod.__file__ = f"{rev}:{path}"
            sys.modules[mod.__name__] = mod  # dataclasses and pickling look a module up by name
            exec(compile(source, mod.__file__, "exec"), mod.__dict__)
            saved.setdefault(dotted, sys.modules.get(dotted))
            sys.modules[dotted] = mod  # what the next file imports
    finally:
        base.register_head = real_register
        for dotted, module in saved.items():
            if module is None:
                sys.modules.pop(dotted, None)
            else:
                sys.modules[dotted] = module
    found = [
        c for c in vars(mod).values()
        if isinstance(c, type) and c.__module__ == mod.__name__ and getattr(c, "head_name", None) == name
    ]  # fmt: skip
    if len(found) != 1:
        raise SystemExit(f"--vs {rev}: vtrbench/heads/{name}.py there defines no head class named {name!r}")
    return found[0]


def make_heads(args: argparse.Namespace) -> dict[str, Any]:
    """label -> head: today's heads, and with --vs the REV versions carrying the same weights."""
    from vtrbench.factory import create_head

    heads = {}
    for name in args.head_list:
        torch.manual_seed(0)
        heads[name] = create_head(name, embed_dim=args.dim)
    for name in args.vs_list:
        old = head_class_at(args.vs, name)(embed_dim=args.dim)
        old.load_state_dict(heads[name].state_dict())
        heads[f"{name}@{args.vs}"] = old
    return heads


# ------------------------------------------------------------------ timing


def train_config(label: str, args: argparse.Namespace, epochs: int = 1) -> Any:
    from vtrbench.config import TrainConfig

    return TrainConfig(
        cache_hash="comparison-cost", head=label.split("@")[0], loss=args.loss, epochs=epochs,
        batch_size=args.batch,
    )  # fmt: skip


def matmul_probe(args: argparse.Namespace) -> tuple[Callable[[], float], int]:
    """(probe() -> seconds of ``PROBE_PRODUCTS`` fp32 products, FLOPs of one probe)."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(args.batch * args.words, args.dim, generator=g)
    b = torch.randn(args.dim, args.dim, generator=g)
    reps = 5

    def probe() -> float:
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        return time.perf_counter() - t0

    return probe, reps * 2 * a.shape[0] * a.shape[1] * b.shape[1]


def time_heads(heads: dict[str, Any], split: Any, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per label: seconds per step of ``--repeats`` ``fit`` calls, and the matmul speed (FLOP/s) of the
    probe run right after each call; heads take turns within a round. A call is ``--steps`` steps a
    epoch and, for a cheap head, as many epochs over the same captions as fill ``--min-seconds``
    (paced by the warm-up round)."""
    from vtrbench.runs.train import fit

    probe, probe_flops = matmul_probe(args)
    data = first_captions(split, args.steps * args.batch)
    labels = list(heads)
    out: dict[str, dict[str, Any]] = {k: {"s_per_step": [], "speed": [], "epochs": 1} for k in labels}
    for r in range(args.repeats + 1):  # round 0 warms every head up and is not kept
        for label in labels if r % 2 == 0 else labels[::-1]:
            epochs = out[label]["epochs"]
            history = fit(heads[label], data, train_config(label, args, epochs), seed=r)
            speed = probe_flops / probe()
            seconds = sum(h["seconds"] for h in history)
            if r:
                out[label]["s_per_step"].append(seconds / (epochs * args.steps))
                out[label]["speed"].append(speed)
            else:
                out[label]["epochs"] = min(MAX_EPOCHS, max(1, math.ceil(args.min_seconds / seconds)))
        print(f"  round {r}/{args.repeats} done", flush=True)
    return out


def ops_per_step(head: Any, split: Any, label: str, args: argparse.Namespace) -> dict[str, float]:
    """Operators per steady-state training step (doing work; all dispatched; syncs), from a 3-step minus
    a 1-step ``fit``."""
    from vtrbench.runs.train import fit

    counts = []
    for steps in (1, 3):
        data = first_captions(split, steps * args.batch)
        with OpCounter() as counter:
            fit(head, data, train_config(label, args), seed=0)
        counts.append((counter.count, counter.dispatched, counter.syncs))
    work, dispatched, syncs = ((b - a) / 2 for a, b in zip(*counts, strict=True))
    return {"ops": work, "dispatched": dispatched, "syncs": syncs}


# ------------------------------------------------------------------ per head


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    from vtrbench.factory import create_loss

    split = synthetic_split(max(args.steps, 3) * args.batch, args)
    heads = make_heads(args)
    timed = time_heads(heads, split, args)
    loss_fn = create_loss(args.loss)
    probe, probe_flops = matmul_probe(args)
    rows = []
    for label, head in heads.items():
        head.train()
        fwd, both = step_flops(head, *one_batch(head, split, args.batch), loss_fn)
        counted = ops_per_step(head, split, label, args)
        ops = counted["ops"]
        opt = optimizer_costs(head, train_config(label, args))
        gather_s = gather_seconds(head, split, args.batch)
        floor_now = 3 * fwd / (probe_flops / probe())  # the parts' own floor unit, probed with them
        s_step = statistics.median(timed[label]["s_per_step"])
        speed = statistics.median(timed[label]["speed"])
        # a round's step in units of that round's own floor: load bursts slow both alike
        work = [t * v for t, v in zip(timed[label]["s_per_step"], timed[label]["speed"], strict=True)]
        proxy = ops - opt["adamw_single"] - opt["clip_single"] + opt["adamw_foreach"] + opt["clip_foreach"]
        rows.append(
            {
                "head": label,
                "label": head.label(),
                "batch": args.batch,
                "s_per_step": s_step,
                "s_per_step_all": timed[label]["s_per_step"],
                "steps_per_call": timed[label]["epochs"] * args.steps,
                "s_per_1k_captions": s_step / args.batch * 1000,
                "matmul_flops_per_s": speed,
                "matmul_speeds": timed[label]["speed"],
                "fwd_flops": fwd,
                "fwd_bwd_flops": both,
                "floor_s": 3 * fwd / speed,
                "step_over_floor": statistics.median(work) / (3 * fwd) if fwd else None,
                "step_over_counted": statistics.median(work) / both if both else None,
                "step_flops_at_probe_speed": work,
                "ops_per_step": ops,
                "syncs_per_step": counted["syncs"],
                "dispatched_per_step": counted["dispatched"],
                "optimizer_ops": opt,
                "ops_per_step_gpu_proxy": proxy,
                "adamw_s": opt["adamw_single_s"],
                "gather_s": gather_s,
                "adamw_over_floor": opt["adamw_single_s"] / floor_now if fwd else None,
                "gather_over_floor": gather_s / floor_now if fwd else None,
            }
        )
    return rows


# ------------------------------------------------------------------ projection


# benchmarks/fidelity.py --out /tmp/fid/bench [--videos 512] (defaults otherwise: meanp,seqtransf x
# infonce,dsl, 9 trials, epochs <= 6, --rungs 0.25:2,0.5:4,1:max --eta 3, tuning seeds 0,1), then
# --summarize of both runs, 2026-12-07 (benchmarks/README.md): pooled trained caption-epochs of
# multi-fidelity / full-fidelity tuning over 2 caches x 2 seeds x 4 cells. A small budget: with 40
# trials fewer trials would climb every rung.
MEASURED_FRACTION = 0.615


def caption_epochs(args: argparse.Namespace, trial_fraction: float) -> float:
    """Captions seen by one (head, loss) cell: tuning trials (each ``trial_fraction`` of a full trial)
    and the final seeds, every one ``--epochs`` epochs of ``--captions`` captions."""
    return (args.trials * trial_fraction + args.seeds) * args.epochs * args.captions


def project(
    rows: list[dict[str, Any]],
    losses: dict[str, dict[str, int]],
    args: argparse.Namespace,
    trial_fraction: float,
) -> dict[str, Any]:
    """CPU thread-hours, GPU hours per peak and launch hours of the comparison, per head and in total.
    A (head, loss) cell's operators: the head's measured step, ``--loss``'s own swapped for the cell's."""
    by_head = {r["head"]: r for r in rows}
    seen = caption_epochs(args, trial_fraction) * len(args.loss_list)
    per_head = []
    for name in args.project_list:
        r = by_head[name]
        steps = seen / r["batch"]
        swap = [losses[loss]["ops"] - losses[args.loss]["ops"] for loss in args.loss_list]
        ops = sum(r["ops_per_step_gpu_proxy"] + d for d in swap)
        gpu = {
            k: steps * 3 * r["fwd_flops"] / (args.gpu_fraction * peak * 1e12) / 3600 for k, peak in args.peaks
        }
        per_head.append(
            {
                "head": name,
                "caption_epochs": seen,
                "steps": steps,
                "cpu_thread_hours": seen * r["s_per_1k_captions"] / 1000 / 3600,
                "flops": steps * 3 * r["fwd_flops"],
                "gpu_hours": gpu,
                # steps split evenly over the losses
                "launch_hours": steps / len(args.loss_list) * ops * args.launch_us * 1e-6 / 3600,
            }
        )
    total = {
        "caption_epochs": sum(h["caption_epochs"] for h in per_head),
        "steps": sum(h["steps"] for h in per_head),
        "cpu_thread_hours": sum(h["cpu_thread_hours"] for h in per_head),
        "flops": sum(h["flops"] for h in per_head),
        "gpu_hours": {k: sum(h["gpu_hours"][k] for h in per_head) for k, _ in args.peaks},
        "launch_hours": sum(h["launch_hours"] for h in per_head),
    }
    total["cpu_days"] = total["cpu_thread_hours"] / args.cores / 24
    return {"trial_fraction": trial_fraction, "per_head": per_head, "total": total}


# ------------------------------------------------------------------ output


HEAD_COLUMNS = {
    "head": lambda r: r["head"],
    "steps/call": lambda r: r["steps_per_call"],
    "s/step": lambda r: r["s_per_step"],
    "s / 1k captions": lambda r: r["s_per_1k_captions"],
    "fwd GFLOP": lambda r: r["fwd_flops"] / 1e9,
    "matmul GFLOP/s": lambda r: r["matmul_flops_per_s"] / 1e9,
    "floor s (3 x fwd)": lambda r: r["floor_s"],
    "step / floor": lambda r: r["step_over_floor"],
    "counted fwd+bwd GFLOP": lambda r: r["fwd_bwd_flops"] / 1e9,
    "step / counted": lambda r: r["step_over_counted"],
    "AdamW / floor": lambda r: r["adamw_over_floor"],
    "batch gather / floor": lambda r: r["gather_over_floor"],
    "ops/step incl. views": lambda r: r["dispatched_per_step"],
    "ops/step (CPU)": lambda r: r["ops_per_step"],
    "ops/step (GPU proxy)": lambda r: r["ops_per_step_gpu_proxy"],
}
VS_COLUMNS = {
    "head": lambda p: p["head"],
    "s/step before": lambda p: p["before_s"],
    "s/step after": lambda p: p["after_s"],
    "before / after (medians)": lambda p: p["before_over_after"],
    "before / after, load-normalised": lambda p: p["before_over_after_load_normalised"],
    "fwd GFLOP before": lambda p: p["before_fwd_flops"] / 1e9,
    "fwd GFLOP after": lambda p: p["after_fwd_flops"] / 1e9,
    "before / its floor": lambda p: p["before_over_own_floor"],
    "before / today's floor": lambda p: p["before_over_todays_floor"],
    "after / floor": lambda p: p["after_over_floor"],
}


def print_heads(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    title = (
        f"Training step per head (batch {args.batch}, D={args.dim}, {args.frames} frames, {args.words} "
        f"words, loss {args.loss}, {torch.get_num_threads()} thread(s), median of {args.repeats} rounds)"
    )
    print_table(title, list(HEAD_COLUMNS), [[f(r) for f in HEAD_COLUMNS.values()] for r in rows])


def print_vs(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Paired before (REV) / after (this tree) rows, each ratio also against today's floor."""
    by = {r["head"]: r for r in rows}
    pairs = []
    for name in args.vs_list:
        now, old = by[name], by[f"{name}@{args.vs}"]
        paired = [
            o / n
            for o, n in zip(old["step_flops_at_probe_speed"], now["step_flops_at_probe_speed"], strict=True)
        ]
        pairs.append(
            {
                "head": name,
                "before_s": old["s_per_step"],
                "after_s": now["s_per_step"],
                "before_over_after": old["s_per_step"] / now["s_per_step"],
                "before_over_after_load_normalised": statistics.median(paired),
                "before_over_own_floor": old["step_over_floor"],
                "after_over_floor": now["step_over_floor"],
                # same work, today's count: what the change saved, in units of today's floor
                "before_over_todays_floor": statistics.median(old["step_flops_at_probe_speed"])
                / (3 * now["fwd_flops"]),
                "before_fwd_flops": old["fwd_flops"],
                "after_fwd_flops": now["fwd_flops"],
            }
        )
    title = f"Before ({args.vs}) and after (this tree), timed in the same rounds"
    print_table(title, list(VS_COLUMNS), [[f(p) for f in VS_COLUMNS.values()] for p in pairs])
    return pairs


def print_projection(
    before: dict[str, Any], after: dict[str, Any], args: argparse.Namespace, measured: dict[str, Any]
) -> None:
    peaks = [k for k, _ in args.peaks]
    gpu = [f"GPU h, {k} @ {args.gpu_fraction:.0%}" for k in peaks]
    launch = f"launch h @ {args.launch_us:g} us"
    print_table(
        f"Projection, per head ({len(args.loss_list)} losses x ({args.trials} trials + {args.seeds} seeds) x "
        f"{args.epochs} epochs x {args.captions} captions; before multi-fidelity)",
        ["head", "caption-epochs (M)", "CPU thread-h", *gpu, launch],
        [
            [
                h["head"],
                h["caption_epochs"] / 1e6,
                h["cpu_thread_hours"],
                *h["gpu_hours"].values(),
                h["launch_hours"],
            ]
            for h in before["per_head"]
        ],
    )
    names = {
        "before multi-fidelity (measured steps x stated comparison)": before,
        f"after, PROJECTION: trials at {after['trial_fraction']:g} of a full trial": after,
        f"multi-fidelity, measured: trials at {measured['trial_fraction']:g} of a full trial": measured,
    }
    rows = []
    for name, p in names.items():
        t = p["total"]
        numbers = [t["caption_epochs"] / 1e6, f"{t['flops']:.2e}", t["cpu_thread_hours"], t["cpu_days"]]
        rows.append([name, *numbers, *t["gpu_hours"].values(), t["launch_hours"]])
    columns = ["", "caption-epochs (M)", "FLOPs", "CPU thread-h", f"days on {args.cores} cores", *gpu, launch]
    title = f"Projection of the comparison: {','.join(args.project_list)} x {','.join(args.loss_list)}"
    print_table(title, columns, rows)


# ------------------------------------------------------------------ command line


def _names(
    text: str, option: str, known: list[str], ap: argparse.ArgumentParser, what: str = "known"
) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        ap.error(f"{option}: give at least one name")
    unknown = [n for n in names if n not in known]
    if unknown:
        ap.error(f"{option}: unknown {', '.join(unknown)} ({what}: {', '.join(known)})")
    return names


def _peaks(text: str, ap: argparse.ArgumentParser) -> list[tuple[str, float]]:
    peaks = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        try:
            tflops = float(value)
        except ValueError:
            tflops = -1.0
        if not sep or not name.strip() or not tflops > 0 or tflops == float("inf"):
            ap.error(f"--gpu-peaks: {part!r} is not NAME=TFLOPS with TFLOPS > 0 (e.g. bf16=989)")
        peaks.append((name.strip(), tflops))
    if not peaks:
        ap.error("--gpu-peaks: give at least one NAME=TFLOPS")
    return peaks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from vtrbench.heads.base import list_heads
    from vtrbench.losses.base import list_losses

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--heads", default="meanp,seqtransf,camoe,xpool,wti,seqlstm", help="heads measured")
    ap.add_argument("--project-heads", default="meanp,seqtransf,camoe,xpool", help="heads of the comparison")
    ap.add_argument("--losses", default="infonce,dsl", help="losses of the comparison")
    ap.add_argument("--loss", default="dsl", help="the loss of the measured steps")
    ap.add_argument("--trials", type=int, default=40, help="tuning trials per (head, loss)")
    ap.add_argument("--epochs", type=int, default=10, help="epochs per trial and per seed")
    ap.add_argument("--seeds", type=int, default=3, help="final runs per (head, loss)")
    ap.add_argument("--captions", type=int, default=180000, help="training captions (MSR-VTT 9k: 180,000)")
    ap.add_argument(
        "--trial-fraction", type=float, default=0.25, help="after multi-fidelity (projected): a trial's share"
    )
    ap.add_argument(
        "--measured-fraction",
        type=float,
        default=MEASURED_FRACTION,
        help="multi-fidelity, measured: a trial's share (benchmarks/fidelity.py: caption-epochs multi/full)",
    )
    ap.add_argument("--gpu-peaks", default="bf16=989,fp32=67", help="NAME=dense TFLOP/s, comma-separated")
    ap.add_argument("--gpu-fraction", type=float, default=0.3, help="share of the peak reached")
    ap.add_argument("--launch-us", type=float, default=5.0, help="seconds x 1e-6 per operator launched")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--words", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5, help="training steps per timed call")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (after one warm-up round)")
    ap.add_argument(
        "--min-seconds", type=float, default=2.0, help="a timed call lasts this long at least (cheap heads)"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the projection is per thread)")
    ap.add_argument("--small", action="store_true", help="toy sizes for a smoke run: " + str(SMALL))
    ap.add_argument("--vs", default="", metavar="REV", help="also time --vs-heads as at git revision REV")
    ap.add_argument("--vs-heads", default="wti,meanp", help="heads timed at --vs REV")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.small:
        for k, v in SMALL.items():
            setattr(args, k, v)
    heads = list_heads()
    args.head_list = _names(args.heads, "--heads", heads, ap)
    measured = "measured, --heads"
    args.project_list = _names(args.project_heads, "--project-heads", args.head_list, ap, measured)
    args.loss_list = _names(args.losses, "--losses", list_losses(), ap)
    _names(args.loss, "--loss", list_losses(), ap)
    args.vs_list = _names(args.vs_heads, "--vs-heads", args.head_list, ap, measured) if args.vs else []
    for name, low in (("trials", 0), ("seeds", 0), ("epochs", 1), ("captions", 1), ("batch", 1), ("dim", 1),
                      ("frames", 1), ("words", 2), ("steps", 1), ("repeats", 1), ("threads", 1)):  # fmt: skip
        if getattr(args, name) < low:
            ap.error(f"--{name} must be >= {low}, got {getattr(args, name)}")
    if args.trials + args.seeds == 0:
        ap.error("--trials and --seeds are both 0: the comparison trains nothing")
    for name in ("trial_fraction", "measured_fraction", "gpu_fraction"):
        value = getattr(args, name)
        if not 0 < value <= 1:
            ap.error(f"--{name.replace('_', '-')} must be in (0, 1], got {value}")
    if not 0 <= args.min_seconds < float("inf"):
        ap.error(f"--min-seconds must be >= 0 and finite, got {args.min_seconds}")
    if not 0 <= args.launch_us < float("inf"):
        ap.error(f"--launch-us must be >= 0 and finite, got {args.launch_us}")
    args.peaks = _peaks(args.gpu_peaks, ap)
    args.cores = machine_info()["cores"]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info()
    print_machine(info)
    rows = measure(args)
    print_heads(rows, args)
    pairs = print_vs(rows, args) if args.vs else []
    losses = loss_costs(sorted({*args.loss_list, args.loss}), args.batch)
    before = project(rows, losses, args, 1.0)
    after = project(rows, losses, args, args.trial_fraction)
    measured = project(rows, losses, args, args.measured_fraction)
    print_projection(before, after, args, measured)
    load = [r for r in (info["load_average"], machine_info()["load_average"]) if r]
    print_notes(
        [
            "floor = 3 x forward FLOPs (FlopCounterMode, LSTM hand-counted) / the fp32 matmul speed probed "
            "right after the head's own timed steps; 'counted fwd+bwd': the FLOPs of forward and backward "
            "as the counter sees them; step / floor: median over rounds of each round's step over that "
            "round's floor (s/step and matmul GFLOP/s are plain medians)",
            "before / after, load-normalised: median over rounds of (before's step x its probe speed) / "
            "(after's step x its probe speed), i.e. the two steps in units of the floor each met",
            "AdamW / floor, batch gather / floor: one AdamW step (one tensor at a time, as on CPU) and "
            "the gather + cast of one batch, timed apart after the rounds, in units of the floor probed "
            "with them",
            "ops/step: aten operators doing work per steady-state step (TorchDispatchMode; views and empty "
            "allocations left out): a proxy for CUDA kernel launches, not a count of them; GPU proxy: "
            "AdamW and gradient clipping as foreach (CUDA's default) instead of one tensor at a time",
            "each loss alone, forward + backward on a (batch, batch) matrix: "
            + "; ".join(f"{k} {v['ops']} ops, {v['flops'] / 1e6:.2f} MFLOP" for k, v in losses.items()),
            "projection: steps = caption-epochs / batch; CPU thread-hours = caption-epochs x s / caption "
            "measured here; GPU hours = steps x 3 x forward FLOPs / (fraction x peak); launch hours = steps "
            f"x ops (GPU proxy, each cell with its own loss) x {args.launch_us:g} us; training steps only "
            "(validation and test evaluation not counted)",
            f"'after' is a PROJECTION: trials at {args.trial_fraction:g} of a full trial's caption-epochs "
            f"(textbook successive halving), seeds in full; 'multi-fidelity, measured': trials at "
            f"{args.measured_fraction:g}, the caption-epoch ratio benchmarks/fidelity.py measured for tune "
            "--fidelity data,epochs vs full fidelity (a small budget: see its comment)",
            f"1-min load average at start / end: {' / '.join(str(x[0]) for x in load)} on {args.cores} cores",
        ]
    )
    payload = {
        "benchmark": "comparison-cost",
        "machine": info,
        "setup": {k: v for k, v in vars(args).items() if k != "peaks"} | {"peaks": dict(args.peaks)},
        "results": rows,
        "vs": pairs,
        "losses": losses,
        "projection": {"before": before, "after": after, "multi_fidelity": measured},
    }
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
