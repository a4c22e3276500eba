"""Two choices inside ``tmass``'s evaluation tile, each against its alternative on the same data.

On one tile of the default evaluation (``--captions`` x ``--videos`` pairs of ``--dim`` values, the
shape ``TMassHead.score_states`` works on: 32 captions of a 32 x 256 block, 2^19 // (32 · 512) = 32
videos), ``--repeats`` rounds, the order alternating, median time of:

- the radius's exponential: ``exp(R)`` against ``exp2(R · log2 e)`` (the head's way; the multiply
  included), both in place, as in the head, on a buffer the tile's (captions, videos, D) values are
  first copied into (the copy is timed in both);
- t · o per pair: a batched matrix-vector product (``bmm`` of the (captions, videos, D) tile with each
  caption's (D, 1) vector) against ``torch.linalg.vecdot`` (the head's way).

Prints ns per element and the ratio of each pair of ways, and the largest relative difference of
their results (they compute the same values up to float32 rounding).

Run: ``python benchmarks/tmass_ops.py --threads 1``.
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captions", type=int, default=32)
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print_machine(machine_info("cpu"))
    from vtrbench.heads.tmass import LOG2_E

    g = torch.Generator().manual_seed(0)
    shape = (args.captions, args.videos, args.dim)
    radius = torch.randn(shape, generator=g)  # log radii of the size the identity start gives
    o = torch.randn(shape, generator=g).transpose(0, 1).contiguous().transpose(0, 1)  # the tile's view
    t = torch.randn(args.captions, args.dim, generator=g)
    # in place on one buffer, as the head does: a fresh 2 MiB result per call would time the
    # allocator's page faults (bimodal across processes) instead of the exponential
    buf = torch.empty(shape)
    runs = {
        "exp": lambda: buf.copy_(radius).exp_(),
        "exp2(x log2 e)": lambda: buf.copy_(radius).mul_(LOG2_E).exp2_(),
        "t.o by bmm": lambda: torch.bmm(o, t[:, :, None])[..., 0],
        "t.o by vecdot": lambda: torch.linalg.vecdot(o, t[:, None, :]),
    }
    with torch.no_grad():
        med = alternating_medians(runs, args.repeats)
        diff = {
            "exp": float(((runs["exp2(x log2 e)"]().clone() - runs["exp"]()).abs() / runs["exp"]()).max()),
            "t.o": float(
                (runs["t.o by vecdot"]() - runs["t.o by bmm"]()).abs().max()
                / runs["t.o by bmm"]().abs().max()
            ),
        }
    n = radius.numel()
    print_table(
        f"tmass tile {args.captions} x {args.videos} x {args.dim}, median of {args.repeats} "
        f"({torch.get_num_threads()} thread(s))",
        ["operation", "median us", "ns / element"],
        [[k, 1e6 * v, 1e9 * v / n] for k, v in med.items()],
    )
    ratios = {
        "exp / exp2": med["exp"] / med["exp2(x log2 e)"],
        "bmm / vecdot": med["t.o by bmm"] / med["t.o by vecdot"],
    }
    print(", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    print(f"largest relative difference: exp {diff['exp']:.2g}, t.o {diff['t.o']:.2g} (of the largest |t.o|)")
    payload = {"median_s": med, "ratios": ratios, "max_rel_diff": diff, "machine": machine_info("cpu")}
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
