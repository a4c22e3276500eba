"""One ``ucofia`` evaluation block against its compute floor: where the time goes.

On one (Bq, Bv) block of ``eval.py --floor``'s random features (same shapes, same perturbed head),
``--repeats`` rounds, the order alternating, of:

- ``chunked``: the evaluation's scoring (``score_states`` without autograd: the word-token
  similarities built a few whole videos at a time, ``ucofia.EVAL_CHUNK``);
- ``whole block``: the same scores in grad mode, no parameter requiring a gradient: the training
  form, which builds the block's similarities at once (the evaluation before the chunking);
- ``chunked, flush-to-zero``: the first with subnormal floats flushed to zero
  (``torch.set_flush_denormal``, on for that call only);
- ``floor``: the block's floor matrix products (``eval.py``'s ``floor_matmuls``).

Prints each one's median and its ratio to the floor's median, the largest absolute difference of
the chunked scores from the whole-block ones, and a profile of the chunked block by operator kind.

Run: ``MALLOC_MMAP_THRESHOLD_=65536 python benchmarks/ucofia_block.py --threads 1``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for p in (str(HERE.parent), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import torch  # noqa: E402
from _common import alternating_medians, machine_info, print_machine, print_table, write_json  # noqa: E402
from eval import floor_matmuls, random_features  # noqa: E402

MATMULS = ("aten::mm", "aten::bmm", "aten::addmm")


def flushed(fn: Any) -> Any:
    """``fn`` with subnormals flushed to zero; the flag is cleared again (PyTorch's default)."""
    torch.set_flush_denormal(True)
    try:
        return fn()
    finally:
        torch.set_flush_denormal(False)


def profile_split(fn: Any) -> dict[str, float]:
    """Share of the self CPU time of one call by operator kind: matrix products, softmax, other."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    split = {"matrix products": 0.0, "softmax": 0.0, "other": 0.0}
    for e in prof.key_averages():
        kind = "matrix products" if e.key in MATMULS else "softmax" if e.key == "aten::_softmax" else "other"
        split[kind] += e.self_cpu_time_total
    total = sum(split.values())
    return {k: v / total for k, v in split.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", type=int, nargs=2, default=(64, 64), help="(captions, videos)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--words", type=int, default=32)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--patches", type=int, default=49)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print_machine(machine_info("cpu"))
    from vtrbench.factory import create_head

    torch.manual_seed(0)
    head = create_head("ucofia", embed_dim=args.dim).eval().requires_grad_(False)
    with torch.no_grad():
        for p in head.parameters():  # as eval.py --floor: away from the identity start
            p.add_(torch.randn(p.shape) * 0.02)
    bq, bv = args.block
    g = torch.Generator().manual_seed(bq)
    with torch.no_grad():
        ts = head.text_state(random_features(bq, args.words, args.dim, g, "text"))
        vs = head.video_state(random_features(bv, args.frames, args.dim, g, "video", args.patches))
        floor = floor_matmuls("ucofia", head, (bq, bv), args)

        def whole() -> torch.Tensor:
            with torch.enable_grad():
                return head.score_states(ts, vs)

        runs = {
            "chunked": lambda: head.score_states(ts, vs),
            "whole block": whole,
            "chunked, flush-to-zero": lambda: flushed(lambda: head.score_states(ts, vs)),
            "floor": lambda: floor(slice(0, bq), slice(0, bv)),
        }
        diff = (runs["chunked"]() - whole()).abs().max().item()
        med = alternating_medians(runs, args.repeats)
        split = profile_split(runs["chunked"])
    print_table(
        f"ucofia, one {bq} x {bv} block, median of {args.repeats} ({torch.get_num_threads()} thread(s))",
        ["scoring", "median ms", "/ floor"],
        [[k, 1e3 * v, v / med["floor"]] for k, v in med.items()],
    )
    print(f"max |chunked - whole block| = {diff:.3g}")
    print("chunked block, self CPU time: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in split.items()))
    payload = {"median_s": med, "over_floor": {k: v / med["floor"] for k, v in med.items()}}
    payload |= {"max_abs_diff": diff, "profile": split, "machine": machine_info("cpu")}
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
