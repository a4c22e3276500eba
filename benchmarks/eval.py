"""Evaluation at scale: time and peak memory of :func:`vtrbench.eval.evaluate_embeddings`.

For each size N (N captions x N videos, one caption per video, like MSR-VTT's 1k-A test)
and each post-processing alone (``raw``, ``dsl``, ``qbnorm`` with banks of
``--bank`` random training captions / videos), random unit embeddings (E = 512, float32)
are scored in chunks of ``--chunk`` query rows against the whole gallery, in both
directions (t2v and v2t).

Memory is the peak resident set during the call above the resident set before it (the
embeddings already allocated; on a GPU, the CUDA allocator's peak above the memory in use
before). It is shown next to the dense N x N float32 similarity matrix, which the
evaluation never builds, and in units of one float64 ``chunk x N`` block: a figure that
stays flat as N grows is memory O(chunk x gallery).

Pairwise heads (``--pairwise xpool,wti,tighttransf``; run with
``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns every large freed buffer to the
system and the resident set follows live memory) are measured through
:func:`vtrbench.eval.evaluate_pairwise` on random features of real-size shapes
(D = 512, ``--frames`` 12 frames, ``--words`` 32 tokens, ragged masks), raw scores in both
directions, blocks of the head's ``eval_block`` (or ``--block``) and query chunks of one
block's height. Their memory is shown in units of one block: the peak of scoring a single
block alone, measured the same way; a flat column across sizes is memory O(block).

**Compute floor** (``--floor --pairwise xpool,wti``): the time of one scoring pass over all
N x N pairs (``score_states`` on every block, what an evaluation that scores each pair once
costs before ranking) next to the head's compute floor, measured in the same run::

    floor_s = N² · MACs per pair / fp32 matmul speed (MAC/s)

measured directly: for every block, the head's scoring and fp32 matrix products doing exactly
the block's floor multiply-accumulates (of the block's shapes, on random data) run one after
the other, in alternating order, so that the load of a shared machine hits both alike; the
shown GMAC/s is the floor's MACs over its measured time, and the multiply-accumulates a pair needs at least:

- ``wti``: L · T · D: every token against every frame (the similarity matrix);
- ``ucofia``: with N = T (1 + k) selected tokens per video (each frame and its top-k patches):
  D + T · D (video level, sentence-frame cosines) + L · N · D (word-patch similarities) + the
  interaction-aware aggregations' products T² + L · N² + N · L² + N² + L² (the softmaxes' exp work
  is not counted); the patch selection runs once per video in its state, not per pair. Per
  block, the scoring makes 15 passes over the (caption, word, video, token) similarities S: the
  product, then for each of the two first aggregations scale-and-mask, softmax, the W product, mask,
  softmax, weight, sum (four exp passes); evaluation builds S a few whole videos at a time
  (``ucofia.EVAL_CHUNK``), so that the passes run in cache;
- ``xpool``: T · D + H · T · D: the caption's query against each frame's key (the attention
  logits), and the caption against each (head, frame) slot's output term (the pooled video
  enters the cosine through LayerNorms, so this product cannot be pooled first). The issue's
  figure counted the first term only (``floor_1mm_s`` in the JSON); with one head the two
  terms are equal, so that floor is half of this one.
- ``tmass``: xpool's two terms, T · D for the caption-frame cosine profile and T · D for the
  radius R = W c (both per pair), and 3 · K · D for the K samples (ε against r ⊙ o, r ⊙ t and
  r ⊙ r: every sample's dot product and norm); K = ``samples`` (20).

Also shown: the previous block code (``wti``: explicit full-size masks; ``xpool``: attention
weights applied to the (caption, video, D) values, then LayerNorms; ``ucofia``: the whole block's
similarities at once, its training form, run in grad mode with no parameter requiring a gradient),
interleaved on the same blocks (first size only), and an N² fit of the pass time (``t = c · N²``,
least squares) extrapolated to ``--extrapolate`` (10,000).

Run: ``python benchmarks/eval.py`` (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import functools
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
from _common import (  # noqa: E402
    MiB,
    PeakMemory,
    machine_info,
    print_machine,
    print_notes,
    print_table,
    timed,
    write_json,
)

POSTS = ("raw", "dsl", "qbnorm")


def unit_embeddings(n: int, dim: int, generator: torch.Generator, device: str) -> torch.Tensor:
    """(n, dim) float32 rows of unit norm, drawn on the CPU (same values on every device)."""
    x = torch.randn(n, dim, generator=generator)
    return torch.nn.functional.normalize(x, dim=1).to(device)


def bench_one(n: int, post: str, args: argparse.Namespace) -> dict[str, Any]:
    from vtrbench.eval import evaluate_embeddings

    g = torch.Generator().manual_seed(n)
    text = unit_embeddings(n * args.captions_per_video, args.dim, g, args.device)
    video = unit_embeddings(n, args.dim, g, args.device)
    query_video = torch.arange(n * args.captions_per_video, device=args.device) // args.captions_per_video
    banks = {}
    if post == "qbnorm":
        banks = {
            "bank_text": unit_embeddings(args.bank, args.dim, g, args.device),
            "bank_video": unit_embeddings(args.bank, args.dim, g, args.device),
        }
    cuda_before = (
        torch.cuda.memory_allocated(torch.device(args.device)) if args.device.startswith("cuda") else 0
    )
    with PeakMemory(args.device) as mem:
        seconds, out = timed(
            lambda: evaluate_embeddings(
                text,
                video,
                query_video,
                logit_scale=100.0,
                postprocessing=(post,),
                chunk_size=args.chunk,
                **banks,
            ),
            args.device,
        )
    nq, nv = text.shape[0], video.shape[0]
    dense = nq * nv * 4
    block = min(args.chunk, max(nq, nv)) * max(nq, nv) * 8
    peak = mem.cuda_peak - cuda_before if mem.cuda_peak is not None else mem.rss_above_start
    return {
        "n_queries": nq,
        "n_gallery": nv,
        "post": post,
        "seconds": seconds,
        "eval_s": out["eval_s"],
        "peak_bytes": peak,
        "peak_rss_above_start": mem.rss_above_start,
        "cuda_peak_above_start": None if mem.cuda_peak is None else mem.cuda_peak - cuda_before,
        "dense_fp32_bytes": dense,
        "chunk_block_bytes": block,
        "t2v_R@1": out["metrics"][post]["t2v"]["R@1"],
    }


def random_features(
    n: int, length: int, dim: int, g: torch.Generator, kind: str, patches: int = 0
) -> dict[str, torch.Tensor]:
    """n captions (tokens) or videos (frames, and ``patches`` patch tokens per frame when > 0) of
    real-size shapes with ragged prefix masks."""
    counts = torch.randint(max(1, length // 2), length + 1, (n,), generator=g)
    mask = torch.arange(length)[None] < counts[:, None]
    x = torch.randn(n, length, dim, generator=g) * mask[..., None]
    if kind == "video":
        out = {"frames": x, "frame_mask": mask}
        if patches:
            out["patches"] = torch.randn(n, length, patches, dim, generator=g) * mask[..., None, None]
        return out
    return {"tokens": x, "token_mask": mask, "eot": counts - 1}


def bench_pairwise(name: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from vtrbench.eval import evaluate_pairwise
    from vtrbench.factory import create_head

    torch.manual_seed(0)
    head = create_head(name, embed_dim=args.dim).eval()
    block = tuple(args.block) if args.block else head.eval_block
    g = torch.Generator().manual_seed(n)

    def build(count: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        out = []
        for kind, length in (("text", args.words), ("video", args.frames)):
            fn = head.text_state if kind == "text" else head.video_state
            parts = [
                fn(random_features(min(1024, count - s), length, args.dim, g, kind, patch_count(head, args)))
                for s in range(0, count, 1024)
            ]
            out.append({k: torch.cat([p[k] for p in parts]) for k in parts[0]})
        return out[0], out[1]

    with torch.no_grad():
        # One block alone first, before the split's states exist: nothing freed by building
        # them can be reused by the allocator and hide the block's own memory.
        one_t, one_v = build(max(block))
        one_t = {k: v[: block[0]] for k, v in one_t.items()}
        one_v = {k: v[: block[1]] for k, v in one_v.items()}
        with PeakMemory("cpu") as one_block:
            head.score_states(one_t, one_v)
        del one_t, one_v
        text_state, video_state = build(n)
        with PeakMemory("cpu") as mem:
            seconds, out = timed(
                lambda: evaluate_pairwise(
                    head.score_states,
                    text_state,
                    video_state,
                    torch.arange(n),
                    logit_scale=float(head.logit_scale()),
                    block=block,
                    chunk_size=max(block),
                    postprocessing=("raw",),
                )
            )
    return {
        "head": head.label(),
        "n_queries": n,
        "n_gallery": n,
        "block": list(block),
        "seconds": seconds,
        "pairs_per_s": 2 * n * n / seconds,  # both directions score every pair
        "peak_bytes": mem.rss_above_start,
        "block_peak_bytes": one_block.rss_above_start,
        "dense_fp32_bytes": n * n * 4,
        "t2v_R@1": out["metrics"]["raw"]["t2v"]["R@1"],
    }


def patch_count(head: Any, args: argparse.Namespace) -> int:
    """Patch tokens per frame to generate: ``--patches`` for a head that reads them, else none."""
    return args.patches if "patches" in getattr(head, "requires", ()) else 0


def floor_macs_per_pair(head: Any, words: int, frames: int, dim: int) -> int | None:
    """Multiply-accumulates one (caption, video) pair needs at least (see the module docstring)."""
    name = type(head).__name__
    if name == "UCoFiAHead":
        n = frames * (1 + head.topk)  # the frame and its top-k patches
        # video level, sentence-frame cosines and ISA, word-patch similarities, the four ISA products
        return (
            dim
            + frames * dim
            + frames * frames
            + words * n * dim
            + words * n * n
            + n * words * words
            + n * n
            + words * words
        )
    if name == "WTIHead":
        return words * frames * dim
    if name == "XPoolHead":
        return frames * dim + head.heads * frames * dim
    if name == "TMassHead":
        return (3 * frames + head.heads * frames + 3 * head.samples) * dim
    return None


def _legacy_xpool(head: Any, text: dict[str, torch.Tensor], frames: dict[str, torch.Tensor]) -> Any:
    """The xpool block code before the Gram-form rewrite (values projected per video, then
    pooled per pair into a (Bq, Bv, D) tensor and put through both LayerNorms): for the
    side-by-side ratio only."""
    import math

    import torch.nn.functional as F

    f = head.layer_norm1(frames["frames"])
    k = head.k_proj(f).unflatten(-1, (head.heads, -1))
    v = head.v_proj(f).unflatten(-1, (head.heads, -1))
    w_o = head.out_proj.weight.unflatten(1, (head.heads, -1))
    video = {"key": k, "value": torch.einsum("bthe,dhe->bhtd", v, w_o), "mask": frames["frame_mask"]}

    def score(text: dict[str, torch.Tensor], video: dict[str, torch.Tensor]) -> torch.Tensor:
        q, k = text["query"], video["key"]
        logits = torch.einsum("qhe,vthe->qvht", q, k) / math.sqrt(q.shape[-1])
        valid = video["mask"][None, :, None, :]
        weights = logits.masked_fill(~valid, torch.finfo(logits.dtype).min).softmax(-1)
        pooled = torch.einsum("qvht,vhtd->qvd", weights, video["value"]) + head.out_proj.bias
        y = head.layer_norm2(pooled)
        out = head.layer_norm3(y + head.linear_proj(y))
        return torch.einsum("qd,qvd->qv", text["unit"], F.normalize(out, dim=-1))

    return score, video


def _whole_block(
    score: Any, ts: dict[str, torch.Tensor], vs: dict[str, torch.Tensor], r: slice, c: slice
) -> Any:
    """ucofia's block code before the chunked evaluation: its autograd form, which builds the whole
    block's word-token similarities and passes over them as the evaluation did (grad mode on)."""
    from vtrbench.heads.base import slice_state

    with torch.enable_grad():
        return score(slice_state(ts, r), slice_state(vs, c))


def _interleaved_passes(
    scorers: dict[str, Any], nq: int, nv: int, block: tuple[int, int]
) -> dict[str, float]:
    """Seconds each scorer takes to cover every (caption, video) block once, the scorers run
    one after the other on each block (order alternating): load changes hit all of them alike."""
    totals = dict.fromkeys(scorers, 0.0)
    names = list(scorers)
    k = 0
    for i in range(0, nq, block[0]):
        for j in range(0, nv, block[1]):
            rows, cols = slice(i, min(i + block[0], nq)), slice(j, min(j + block[1], nv))
            for name in names if k % 2 == 0 else names[::-1]:
                t0 = time.perf_counter()
                scorers[name](rows, cols)
                totals[name] += time.perf_counter() - t0
            k += 1
    return totals


def floor_matmuls(name: str, head: Any, block: tuple[int, int], args: argparse.Namespace) -> Any:
    """The block's floor: its multiply-accumulates as fp32 matrix products of the block's shapes."""
    g = torch.Generator().manual_seed(1)
    d, t = args.dim, args.frames
    if name == "wti":
        a = torch.randn(block[0] * args.words, d, generator=g)
        b = torch.randn(d, block[1] * t, generator=g)

        def run(rows: slice, cols: slice) -> None:
            nq, nv = rows.stop - rows.start, cols.stop - cols.start
            a[: nq * args.words] @ b[:, : nv * t]

        return run
    if name == "ucofia":
        return _floor_ucofia(head, block, args)
    a = torch.randn(block[0], d, generator=g)
    b = torch.randn(d, block[1] * t, generator=g)
    c = torch.randn(d, block[1] * t * head.heads, generator=g)

    def run_xpool(rows: slice, cols: slice) -> None:
        nq, nv = rows.stop - rows.start, cols.stop - cols.start
        a[:nq] @ b[:, : nv * t]  # query x keys
        a[:nq] @ c[:, : nv * t * head.heads]  # caption x slot terms

    if name != "tmass":
        return run_xpool
    k = head.samples
    profile = torch.randn(block[0] * block[1], t, generator=g)
    w = torch.randn(t, d, generator=g)
    eps = torch.randn(block[0] * k, d, generator=g)
    per_pair = torch.randn(d, block[1], generator=g)

    def run_tmass(rows: slice, cols: slice) -> None:
        nq, nv = rows.stop - rows.start, cols.stop - cols.start
        run_xpool(rows, cols)
        a[:nq] @ b[:, : nv * t]  # caption x unit frames (the cosine profile)
        profile[: nq * nv] @ w  # the radius W c
        for _ in range(3):  # the samples against r ⊙ o, r ⊙ t, r ⊙ r
            eps[: nq * k] @ per_pair[:, :nv]

    return run_tmass


def _floor_ucofia(head: Any, block: tuple[int, int], args: argparse.Namespace) -> Any:
    """ucofia's floor products (:func:`floor_macs_per_pair`) as fp32 matrix products of the block."""
    g = torch.Generator().manual_seed(1)
    d, t, w = args.dim, args.frames, args.words
    n = t * (1 + head.topk)
    bq, bv = block
    sent, video = torch.randn(bq, d, generator=g), torch.randn(d, bv * (1 + t), generator=g)
    words, toks = torch.randn(bq * w, d, generator=g), torch.randn(d, bv * n, generator=g)
    sims_n, sims_l = torch.randn(bq * w * bv, n, generator=g), torch.randn(bq * bv * n, w, generator=g)
    sims_t = torch.randn(bq * bv, t, generator=g)
    w_n, w_l, w_t = (
        torch.randn(n, n, generator=g),
        torch.randn(w, w, generator=g),
        torch.randn(t, t, generator=g),
    )

    def run(rows: slice, cols: slice) -> None:
        nq, nv = rows.stop - rows.start, cols.stop - cols.start
        sent[:nq] @ video[:, : nv * (1 + t)]  # video level and sentence-frame cosines
        sims_t[: nq * nv] @ w_t  # sentence-frame ISA
        words[: nq * w] @ toks[:, : nv * n]  # word-patch similarities
        sims_n[: nq * w * nv] @ w_n  # ISA over patches, per word
        sims_l[: nq * nv * n] @ w_l  # ISA over words, per patch
        sims_n[: nq * nv] @ w_n  # ISA over patches of the per-patch scores
        sims_l[: nq * nv] @ w_l  # ISA over words of the per-word scores

    return run


def bench_floor(name: str, n: int, args: argparse.Namespace, legacy: bool) -> dict[str, Any]:
    from vtrbench.factory import create_head
    from vtrbench.heads.base import slice_state

    torch.manual_seed(0)
    head = create_head(name, embed_dim=args.dim).eval()
    with torch.no_grad():
        for p in head.parameters():  # away from the identity start: every term non-trivial
            p.add_(torch.randn(p.shape) * 0.02)
    block = tuple(args.block) if args.block else head.eval_block
    g = torch.Generator().manual_seed(n)
    with torch.no_grad():
        chunks = [(s, min(1024, n - s)) for s in range(0, n, 1024)]
        text_raw = [random_features(c, args.words, args.dim, g, "text") for _, c in chunks]
        video_raw = [
            random_features(c, args.frames, args.dim, g, "video", patch_count(head, args)) for _, c in chunks
        ]
        cat = lambda parts: {k: torch.cat([p[k] for p in parts]) for k in parts[0]}  # noqa: E731
        ts = cat([head.text_state(t) for t in text_raw])
        vs = cat([head.video_state(v) for v in video_raw])
        scorers: dict[str, Any] = {
            "now": lambda r, c: head.score_states(slice_state(ts, r), slice_state(vs, c)),
        }
        if not args.no_floor:
            scorers["floor"] = floor_matmuls(name, head, block, args)
        if legacy and name == "wti":
            scorers["previous"] = lambda r, c: head.score_states_masked(
                slice_state(ts, r), slice_state(vs, c)
            )
        elif legacy and name == "xpool":
            old_score, old_vs = _legacy_xpool(head, ts, cat(video_raw))
            scorers["previous"] = lambda r, c: old_score(slice_state(ts, r), slice_state(old_vs, c))
        elif legacy and name == "ucofia":
            head.requires_grad_(False)  # grad mode on, no graph: the whole-block form, nothing recorded
            scorers["previous"] = lambda r, c: _whole_block(head.score_states, ts, vs, r, c)
        totals = _interleaved_passes(scorers, n, n, block)
    seconds, floor_s, legacy_s = totals["now"], totals.get("floor"), totals.get("previous")
    macs = floor_macs_per_pair(head, args.words, args.frames, args.dim)
    speed = n * n * macs / floor_s if macs and floor_s else None
    return {
        "head": head.label(),
        "n": n,
        "block": list(block),
        "pass_s": seconds,
        "matmul_gmacs": None if speed is None else speed / 1e9,
        "macs_per_pair": macs,
        "floor_s": floor_s,
        "pass_over_floor": None if floor_s is None else seconds / floor_s,
        # the floor for xpool counted the attention logits only (half of this one)
        "floor_1mm_s": None
        if name != "xpool" or floor_s is None
        else floor_s * args.frames / (args.frames + head.heads * args.frames),
        "legacy_pass_s": legacy_s,
        "speedup_vs_legacy": None if legacy_s is None else legacy_s / seconds,
    }


def fit_quadratic(ns: list[int], seconds: list[float]) -> float:
    """c of t = c · N² by least squares."""
    num = sum(n * n * t for n, t in zip(ns, seconds, strict=True))
    return num / sum(float(n) ** 4 for n in ns)


def run_floor(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    sizes = [int(x) for x in args.pass_sizes.split(",") if x.strip()]
    for name in [h.strip() for h in args.pairwise.split(",") if h.strip()]:
        for i, n in enumerate(sizes):
            r = bench_floor(name, n, args, legacy=i == 0 and not args.no_legacy)
            results.append(r)
            print(f"  {r['head']:<12} N={n:>6} pass {r['pass_s']:8.2f} s", flush=True)
    rows = [
        [
            r["head"],
            r["n"],
            "x".join(str(b) for b in r["block"]),
            r["pass_s"],
            r["floor_s"],
            r["pass_over_floor"],
            r["matmul_gmacs"],
            r["legacy_pass_s"],
            r["speedup_vs_legacy"],
        ]
        for r in results
    ]
    print_table(
        f"One scoring pass over N x N pairs vs the compute floor (random features, D={args.dim}, "
        f"{args.words} tokens, {args.frames} frames, cpu, {torch.get_num_threads()} thread(s))",
        [
            "head",
            "N",
            "block",
            "pass s",
            "floor s",
            "pass / floor",
            "matmul GMAC/s",
            "previous code s",
            "previous / now",
        ],
        rows,
    )
    fits = []
    for head in dict.fromkeys(r["head"] for r in results):
        mine = [r for r in results if r["head"] == head]
        c = fit_quadratic([r["n"] for r in mine], [r["pass_s"] for r in mine])
        worst = max(abs(r["pass_s"] / (c * r["n"] ** 2) - 1) for r in mine)
        fits.append(
            {"head": head, "c": c, "max_rel_residual": worst, "extrapolated_s": c * args.extrapolate**2}
        )
    print_notes(
        [
            f"{f['head']}: t = {f['c']:.3e} s · N² (fit to N = {args.pass_sizes}, largest residual "
            f"{100 * f['max_rel_residual']:.0f} %) -> {args.extrapolate:,} x {args.extrapolate:,}: "
            f"{f['extrapolated_s']:.0f} s per pass"
            for f in fits
        ]
        + [
            "floor = N² x MACs per pair / matmul speed of this run (see the script's docstring);",
            "'previous code' = the block code before this change, on the same states (first size only).",
        ]
    )
    return [*results, *({"fit": f} for f in fits)]


def run_pairwise(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for name in [h.strip() for h in args.pairwise.split(",") if h.strip()]:
        for n in [int(x) for x in args.pair_sizes.split(",") if x.strip()]:
            r = bench_pairwise(name, n, args)
            results.append(r)
            print(f"  {r['head']:<12} N={n:>6} {r['seconds']:8.2f} s", flush=True)
    rows = [
        [
            r["head"],
            r["n_queries"],
            "x".join(str(b) for b in r["block"]),
            r["seconds"],
            r["pairs_per_s"],
            None if r["peak_bytes"] is None else r["peak_bytes"] / MiB,
            None if r["block_peak_bytes"] is None else r["block_peak_bytes"] / MiB,
            None
            if not r["peak_bytes"] or not r["block_peak_bytes"]
            else r["peak_bytes"] / r["block_peak_bytes"],
            r["dense_fp32_bytes"] / MiB,
        ]
        for r in results
    ]
    print_table(
        f"Pairwise evaluation (random features, D={args.dim}, {args.words} tokens, {args.frames} frames, "
        "raw, t2v + v2t, cpu)",
        [
            "head",
            "N (= queries = gallery)",
            "block",
            "seconds",
            "pairs/s",
            "peak RSS above start (MiB)",
            "one block alone (MiB)",
            "peak / one block",
            "dense fp32 matrix (MiB)",
        ],
        rows,
    )
    print_notes(
        [
            "every pair is scored twice (t2v and v2t passes; dsl adds a third, qbnorm the bank passes);",
            "a flat 'peak / one block' column across N means memory O(block), whatever the gallery.",
        ]
    )
    return results


# ------------------------------------------------------------------ score once: before vs after


def evaluate_module_at(rev: str) -> Any:
    """``vtrbench/evaluate.py`` as it was at git revision ``rev``, loaded beside today's (same metrics)."""
    import subprocess
    import types

    src = subprocess.run(
        ["git", "show", f"{rev}:vtrbench/evaluate.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    name = f"_vtrbench_evaluate_{rev[:12]}"
    mod = types.ModuleType(name)
    mod.__file__ = f"{rev}:vtrbench/evaluate.py"
    sys.modules[name] = mod  # dataclasses look their module up
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    return mod


def _count_pairs(mod: Any, pairs: list[int]) -> None:
    """Wrap ``mod.EmbeddingScorer`` so that every score it computes is counted in ``pairs``."""
    for method in ("rows", "rows_into", "columns"):
        original = getattr(mod.EmbeddingScorer, method, None)
        if original is None or getattr(original, "_counting", False):
            continue

        def counting(self: Any, part: slice, *out: torch.Tensor, original: Any = original) -> torch.Tensor:
            scores = original(self, part, *out)
            pairs.append(scores.numel())
            return scores

        counting._counting = True  # type: ignore[attr-defined]
        setattr(mod.EmbeddingScorer, method, counting)


def _once_call(kind: str, size: int, posts: tuple[str, ...], bank: int, args: argparse.Namespace,
               counted: list[int]) -> Any:  # fmt: skip
    """``call(module) -> evaluation`` of one score-once row, on inputs drawn once."""
    g = torch.Generator().manual_seed(size)
    if kind == "factorised":
        text = unit_embeddings(size, args.dim, g, args.device)
        video = unit_embeddings(size, args.dim, g, args.device)
        banks = {}
        if "qbnorm" in posts:
            banks = {"bank_text": unit_embeddings(bank, args.dim, g, args.device),
                     "bank_video": unit_embeddings(bank, args.dim, g, args.device)}  # fmt: skip

        def call(mod: Any) -> Any:
            return mod.evaluate_embeddings(
                text, video, torch.arange(size), logit_scale=100.0, postprocessing=posts,
                chunk_size=args.chunk, **banks,
            )  # fmt: skip

        return call

    from vtrbench.factory import create_head

    torch.manual_seed(0)
    head = create_head(kind, embed_dim=args.dim).eval()
    block = tuple(args.block) if args.block else head.eval_block

    def states(count: int) -> tuple[dict, dict]:
        with torch.no_grad():
            t = head.text_state(random_features(count, args.words, args.dim, g, "text"))
            v = head.video_state(random_features(count, args.frames, args.dim, g, "video"))
        return t, v

    ts, vs = states(size)
    banks = {}
    if "qbnorm" in posts:
        bts, bvs = states(bank)
        banks = {"bank_text_state": bts, "bank_video_state": bvs}

    def score(t: dict, v: dict) -> torch.Tensor:
        counted.append(next(iter(t.values())).shape[0] * next(iter(v.values())).shape[0])
        return head.score_states(t, v)

    def call(mod: Any) -> Any:
        with torch.no_grad():
            return mod.evaluate_pairwise(
                score, ts, vs, torch.arange(size), logit_scale=float(head.logit_scale()), block=block,
                chunk_size=max(block), postprocessing=posts, **banks,
            )  # fmt: skip

    return call


def _moved(a: dict, b: dict) -> int:
    """Queries whose expected rank differs between two evaluations (all post-processings, both ways)."""
    return sum(x != y for p in a for d in ("t2v", "v2t") for x, y in zip(a[p][d], b[p][d], strict=True))


def run_score_once(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Issue 20 item 1: every pair scored once. The evaluation at ``--score-once-vs REV`` (before) and
    today's (after), alternated ``--repeats`` times in this one process on the same inputs; pairs
    scored / (queries x gallery) counted by wrapping the scorers; ranks compared with today's tie
    tolerance switched off (so that only the change of how scores are computed is compared)."""
    import statistics

    import vtrbench.eval as after
    from vtrbench.eval import ranking  # where TIE_RTOL is looked up when an evaluation runs

    before = evaluate_module_at(args.score_once_vs)
    counted: list[int] = []
    for mod in (before, after):
        _count_pairs(mod, counted)
    configs: list[tuple[str, int, tuple[str, ...], int]] = []
    for posts in (("raw",), ("raw", "dsl"), ("raw", "dsl", "qbnorm")):
        configs.append(("factorised", args.once_size, posts, args.bank))
    for name in [h.strip() for h in args.once_pairwise.split(",") if h.strip()]:
        for posts in (("raw", "dsl"), ("raw", "dsl", "qbnorm")):
            configs.append((name, args.once_pair_size, posts, 5 * args.once_pair_size))
    rows = []
    for kind, size, posts, bank in configs:
        call = _once_call(kind, size, posts, bank, args, counted)
        times: dict[str, list[float]] = {"before": [], "after": [], "exact": []}
        pairs: dict[str, int] = {}
        outs: dict[str, Any] = {}
        for _ in range(args.repeats):
            # "exact": today's code with the tie tolerance off (exact equality, as before): the
            # effect of scoring once alone; "after" adds the tolerance's cost
            for label, mod in (("before", before), ("after", after), ("exact", after)):
                counted.clear()
                rtol = ranking.TIE_RTOL
                ranking.TIE_RTOL = 0.0 if label == "exact" else rtol
                try:
                    seconds, outs[label] = timed(functools.partial(call, mod), args.device)
                finally:
                    ranking.TIE_RTOL = rtol
                times[label].append(seconds)
                pairs[label] = sum(counted)
        exact = outs["exact"]
        t_before, t_after = statistics.median(times["before"]), statistics.median(times["after"])
        t_exact = statistics.median(times["exact"])
        row = {
            "scorer": kind, "n": size, "posts": "+".join(posts), "bank": bank if "qbnorm" in posts else 0,
            "pairs_before": pairs["before"] / size**2, "pairs_after": pairs["after"] / size**2,
            "seconds_before": t_before, "seconds_exact": t_exact, "seconds_after": t_after,
            "speedup_exact": t_before / t_exact, "speedup": t_before / t_after,
            "times_before": times["before"], "times_exact": times["exact"], "times_after": times["after"],
            "ranks_equal_exact_ties": exact["per_query_ranks"] == outs["before"]["per_query_ranks"],
            "ranks_moved_by_tolerance": _moved(outs["after"]["per_query_ranks"], exact["per_query_ranks"]),
            "score_matrix": outs["after"].get("score_matrix"),
        }  # fmt: skip
        rows.append(row)
        print(f"  {kind:<10} N={size:>6} {row['posts']:<15} before {t_before:8.2f} s  "
              f"once {t_exact:8.2f} s  after {t_after:8.2f} s", flush=True)  # fmt: skip
    keys = ("scorer", "n", "posts", "bank", "pairs_before", "pairs_after", "seconds_before",
            "seconds_exact", "seconds_after", "speedup_exact", "speedup", "ranks_equal_exact_ties",
            "ranks_moved_by_tolerance")  # fmt: skip
    print_table(
        f"Score each pair once: evaluate.py at {args.score_once_vs} (before) vs this tree with exact ties "
        f"(once) and with the tie tolerance (after), alternated x{args.repeats}, median s, {args.device}",
        ["scorer", "N", "post-processings", "bank", "pairs/N^2 before", "pairs/N^2 after",
         "s before", "s once", "s after", "before/once", "before/after", "ranks equal (exact ties)",
         "ranks moved by tolerance"],
        [[r[k] for k in keys] for r in rows],
    )  # fmt: skip
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes",
        default="1000,10000,50000,100000" if cuda else "1000,10000,50000",
        help="comma-separated N (N captions x N videos)",
    )
    ap.add_argument("--posts", default=",".join(POSTS), help="post-processings, each measured alone")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--captions-per-video", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=1024, help="evaluate_embeddings' chunk_size")
    ap.add_argument("--bank", type=int, default=5000, help="qbnorm bank size (each direction)")
    ap.add_argument("--device", default="cuda" if cuda else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    ap.add_argument(
        "--pairwise", default="", help="pairwise heads to measure instead (e.g. xpool,wti,tighttransf)"
    )
    ap.add_argument("--pair-sizes", default="1000,10000", help="comma-separated N for --pairwise")
    ap.add_argument("--frames", type=int, default=12, help="frames per video (--pairwise)")
    ap.add_argument("--words", type=int, default=32, help="tokens per caption (--pairwise)")
    ap.add_argument(
        "--patches", type=int, default=49, help="patch tokens per frame for ucofia (ViT-B/32: 49)"
    )
    ap.add_argument("--block", type=int, nargs=2, default=None, help="(captions, videos) per block")
    ap.add_argument(
        "--score-once-vs", default="", metavar="REV",
        help="compare this tree's evaluation with evaluate.py at git revision REV (issue 20 item 1)",
    )  # fmt: skip
    ap.add_argument("--once-size", type=int, default=10000, help="N for the factorised score-once rows")
    ap.add_argument("--once-pairwise", default="xpool,wti", help="pairwise heads for the score-once rows")
    ap.add_argument("--once-pair-size", type=int, default=300, help="N for the pairwise score-once rows")
    ap.add_argument("--repeats", type=int, default=2, help="alternated repeats (score-once)")
    ap.add_argument("--floor", action="store_true", help="--pairwise: one scoring pass vs the compute floor")
    ap.add_argument("--pass-sizes", default="1000,2000,5000", help="comma-separated N for --floor")
    ap.add_argument("--extrapolate", type=int, default=10000, help="--floor: N of the N² extrapolation")
    ap.add_argument("--no-legacy", action="store_true", help="--floor: skip the previous code's pass")
    ap.add_argument("--no-floor", action="store_true", help="--floor: time the passes only (large N)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info(args.device)
    print_machine(info)
    if args.score_once_vs:
        payload = {
            "benchmark": "eval-score-once",
            "machine": info,
            "setup": vars(args),
            "results": run_score_once(args),
        }
        write_json(args.json, payload)
        return payload
    if args.pairwise and args.floor:
        results = run_floor(args)
        payload = {"benchmark": "eval-floor", "machine": info, "setup": vars(args), "results": results}
        write_json(args.json, payload)
        return payload
    if args.pairwise:
        payload = {
            "benchmark": "eval-pairwise",
            "machine": info,
            "setup": vars(args),
            "results": run_pairwise(args),
        }
        write_json(args.json, payload)
        return payload
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    posts = [p.strip() for p in args.posts.split(",") if p.strip()]
    results = []
    for n in sizes:
        for post in posts:
            r = bench_one(n, post, args)
            results.append(r)
            print(f"  N={n:>7} {post:<7} {r['seconds']:8.2f} s", flush=True)
    rows = [
        [
            r["n_queries"],
            r["n_gallery"],
            r["post"],
            r["seconds"],
            None if r["peak_bytes"] is None else r["peak_bytes"] / MiB,
            r["dense_fp32_bytes"] / MiB,
            None if r["peak_bytes"] is None else r["peak_bytes"] / r["dense_fp32_bytes"],
            None if r["peak_bytes"] is None else r["peak_bytes"] / r["chunk_block_bytes"],
        ]
        for r in results
    ]
    where = "GPU allocator" if args.device.startswith("cuda") else "RSS"
    print_table(
        f"Evaluation (random unit embeddings, E={args.dim}, chunk {args.chunk}, qbnorm bank {args.bank}, "
        f"device {args.device})",
        [
            "queries",
            "gallery",
            "post",
            "seconds",
            f"peak {where} above start (MiB)",
            "dense fp32 matrix (MiB)",
            "peak / dense",
            "peak / (chunk x gallery x 8 B)",
        ],
        rows,
    )
    print_notes(
        [
            "each post-processing measured alone, both directions (t2v and v2t), metrics included;",
            "a flat last column across sizes means memory O(chunk x gallery); "
            "the dense matrix is never built.",
        ]
    )
    payload = {"benchmark": "eval", "machine": info, "setup": vars(args), "results": results}
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
