"""Tie bands of DSL and Sinkhorn against exact float64 references (issue 27 item 3).

Two 360-caption x 120-video matrices (3 captions per video), the sizes of the review that found the
bands too loose:

- **hub-heavy**: 120 random unit videos in 32 dimensions, 8 of them hubs near one common direction;
  each caption is its video plus noise, pulled towards that direction (so the hubs are everyone's
  near neighbours), float32 embeddings;
- **tie-heavy**: embeddings in {-1, 0, 1}^8 / 4 (every product, hence every raw score, is a
  multiple of 1/16, exact in float32: many scores are exactly equal), 12 videos repeated (identical
  columns), captions = their video with two entries re-drawn.

References are written from the published equations in float64 with no tolerance: scores from the
exact float64 products of the embeddings, logsumexps summed in sorted order (the same value for the
same multiset of terms, so exact ties stay exact), ranks by exact comparison. Sinkhorn's reference
runs the same order of updates (u then v) for the same number of iterations, or until no scaling
moves by more than 1e-13 ("converged").

    python -m benchmarks.tie_bands                  # the table README quotes (a few seconds)
    python -m benchmarks.tie_bands --sensitivity    # and the Sinkhorn perturbation table (a minute)

prints, per matrix, input precision, post-processing and iterations, how many of the 360 t2v and
120 v2t queries get other tie counts from vtrbench than from the exact reference. Run it on an older
checkout (``PYTHONPATH=<old tree> python benchmarks/tie_bands.py``) to measure the bands it had.
``--sensitivity`` adds how far a pair's Sinkhorn score difference moves when the raw scores move
within their rounding bound, against the band (:func:`sinkhorn_sensitivity`).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from vtrbench.eval import evaluate_embeddings
from vtrbench.metrics import gt_counts, v2t_counts

N_V, CAPS = 120, 3
LOGIT_SCALE, DSL_TAU, EPS = 100.0, 1.0, 0.05


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def hub_heavy(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(text (360, 32), video (120, 32), caption -> video)``, float32 unit vectors with 8 hubs."""
    g = torch.Generator().manual_seed(seed)
    dim = 32
    video = _unit(torch.randn(N_V, dim, generator=g))
    common = _unit(torch.randn(1, dim, generator=g))
    video[:8] = _unit(common + 0.3 * torch.randn(8, dim, generator=g))
    qv = torch.arange(N_V).repeat_interleave(CAPS)
    text = _unit(video[qv] + 0.9 * torch.randn(len(qv), dim, generator=g) / math.sqrt(dim) * 4 + 0.6 * common)
    return text.float(), video.float(), qv


def tie_heavy(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(text (360, 8), video (120, 8), caption -> video)``: multiples of 1/4, exact scores."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(-1, 2, (N_V, 8), generator=g).float()
    video[-12:] = video[:12]  # identical columns: exact ties through every post-processing
    qv = torch.arange(N_V).repeat_interleave(CAPS)
    text = video[qv].clone()
    for _ in range(2):
        where = torch.randint(0, 8, (len(qv),), generator=g)
        text[torch.arange(len(qv)), where] = torch.randint(-1, 2, (len(qv),), generator=g).float()
    return text / 4, video / 4, qv


MATRICES = {"hub-heavy": hub_heavy, "tie-heavy": tie_heavy}


# ------------------------------------------------------------------ exact float64 references


def _lse(x: np.ndarray, axis: int) -> np.ndarray:
    """logsumexp along ``axis``, the terms summed in sorted order: equal multisets give equal values."""
    m = x.max(axis=axis, keepdims=True)
    terms = np.sort(np.exp(x - m), axis=axis)
    return (np.log(terms.sum(axis=axis, keepdims=True)) + m).squeeze(axis)


def raw64(text: torch.Tensor, video: torch.Tensor) -> np.ndarray:
    """The exact float64 caption x video products."""
    return text.double().numpy() @ video.double().numpy().T


def dsl_reference(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CAMoE's ``S * softmax(S / tau)`` (``S = logit_scale * s``): t2v (captions x videos), each video's
    softmax over the captions; v2t (videos x captions), each caption's softmax over the videos."""
    z = LOGIT_SCALE * s
    t2v = z * np.exp(z / DSL_TAU - _lse(z / DSL_TAU, 0)[None, :])
    v2t = (z * np.exp(z / DSL_TAU - _lse(z / DSL_TAU, 1)[:, None])).T
    return t2v, v2t


def sinkhorn_reference(
    s: np.ndarray, iters: int | None, eps: float = EPS, tol: float = 1e-13, cap: int = 200_000
) -> tuple[np.ndarray, np.ndarray, int]:
    """Sinkhorn-Knopp in log space, ``u = a / (K v)`` then ``v = b / (K^T u)`` from ``v = 1``, for
    ``iters`` iterations (None: until no scaling moves by more than ``tol``); returns the t2v scores
    ``s / eps + log v``, the v2t scores ``(s / eps + log u).T`` and the iterations run."""
    x = s / eps
    log_a, log_b = -math.log(s.shape[0]), -math.log(s.shape[1])
    f, g = np.zeros(s.shape[0]), np.zeros(s.shape[1])
    n = 0
    while n < (iters if iters is not None else cap):
        f_new = log_a - _lse(x + g[None, :], 1)
        g_new = log_b - _lse(x + f_new[:, None], 0)
        step = max(np.abs(f_new - f).max(), np.abs(g_new - g).max())
        f, g, n = f_new, g_new, n + 1
        if iters is None and n > 1 and step <= tol:
            break
    return x + g[None, :], (x + f[:, None]).T, n


def exact_counts(t2v: np.ndarray, v2t: np.ndarray, qv: torch.Tensor) -> dict[str, np.ndarray]:
    """Tie counts ``(3, queries)`` by exact comparison (clip4clip grouping for v2t)."""
    out = {}
    t = gt_counts(torch.from_numpy(t2v), qv)
    out["t2v"] = np.stack([t.higher, t.tied, t.tied_correct])
    v = v2t_counts(torch.from_numpy(v2t), torch.arange(v2t.shape[0]), qv, "clip4clip")
    out["v2t"] = np.stack([v.higher, v.tied, v.tied_correct])
    return out


def vtrbench_counts(
    text: torch.Tensor, video: torch.Tensor, qv: torch.Tensor, post: str, **post_options: float
) -> dict[str, np.ndarray]:
    """vtrbench's stored tie counts of ``post`` (``(3, queries)`` per direction)."""
    res = evaluate_embeddings(
        text, video, qv, logit_scale=LOGIT_SCALE, dsl_tau=DSL_TAU, postprocessing=[post],
        post_options=post_options or None,
    )  # fmt: skip
    stored = res["per_query"][post]
    return {d: np.array([stored[d][k] for k in ("higher", "tied", "tied_correct")]) for d in ("t2v", "v2t")}


def differing(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, int]:
    """How many queries of each direction have other counts in ``a`` than in ``b``."""
    return {d: int((a[d] != b[d]).any(axis=0).sum()) for d in ("t2v", "v2t")}


def measure(iters: tuple[int, ...] = (5, 50, 300)) -> list[tuple[str, ...]]:
    """Rows ``(matrix, inputs, post, reference, t2v differing / 360, v2t differing / 120)``."""
    rows = []
    for name, build in MATRICES.items():
        text, video, qv = build()
        s = raw64(text, video)
        converged = sinkhorn_reference(s, None)
        for it in iters:
            got = vtrbench_counts(text, video, qv, "sinkhorn", sinkhorn_iters=it)
            same = exact_counts(*sinkhorn_reference(s, it)[:2], qv)
            d = differing(got, same)
            rows.append((name, "float32", f"sinkhorn {it}", "same updates", str(d["t2v"]), str(d["v2t"])))
            d = differing(got, exact_counts(*converged[:2], qv))
            rows.append(
                (
                    name,
                    "float32",
                    f"sinkhorn {it}",
                    f"converged ({converged[2]})",
                    str(d["t2v"]),
                    str(d["v2t"]),
                )
            )
        ref = exact_counts(*dsl_reference(s), qv)
        for dtype in (torch.float32, torch.float64):
            d = differing(vtrbench_counts(text.to(dtype), video.to(dtype), qv, "dsl"), ref)
            label = str(dtype).replace("torch.", "")
            rows.append((name, label, "dsl", "exact", str(d["t2v"]), str(d["v2t"])))
    return rows


def sinkhorn_sensitivity(iters: tuple[int, ...] = (5, 50, 300)) -> list[tuple[str, ...]]:
    """How far a pair's Sinkhorn score difference moves when every raw score moves by up to the raw
    bound ``delta`` (2^-20 max|s|; about 3x the largest rounding measured for a float32 matmul):
    random signs, one column up and the rest down, and rank-one sign patterns. Rows ``(matrix,
    iterations, t2v, v2t)``: the largest move of a pair difference within a query's row, in units of
    the band of a pair (``6 delta / eps``, the scalings' rounding left out)."""
    rows = []
    for name, build in MATRICES.items():
        text, video, _ = build()
        s = raw64(text, video)
        delta = 2.0**-20 * float(np.abs(s).max())
        rng = np.random.default_rng(0)
        patterns = [rng.choice([-1.0, 1.0], s.shape) for _ in range(3)]
        for j in (0, 60):
            column = -np.ones(s.shape)
            column[:, j] = 1.0
            patterns.append(column)
        patterns += [
            np.outer(rng.choice([-1.0, 1.0], s.shape[0]), rng.choice([-1.0, 1.0], s.shape[1]))
            for _ in range(2)
        ]
        for it in iters:
            base = sinkhorn_reference(s, it)[:2]
            worst = [0.0, 0.0]
            for e in patterns:
                moved = sinkhorn_reference(s + delta * e, it)[:2]
                for k in range(2):
                    change = moved[k] - base[k]
                    worst[k] = max(worst[k], float((change.max(1) - change.min(1)).max()))
            band = 6 * delta / EPS
            rows.append((name, str(it), f"{worst[0] / band:.2f}", f"{worst[1] / band:.2f}"))
    return rows


def _print(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sensitivity", action="store_true", help="also the Sinkhorn perturbation table")
    args = ap.parse_args()
    torch.set_num_threads(1)
    _print(("matrix", "inputs", "post", "reference", "t2v differing / 360", "v2t differing / 120"), measure())
    if args.sensitivity:
        print()
        _print(
            ("matrix", "iterations", "t2v move / pair band", "v2t move / pair band"), sinkhorn_sensitivity()
        )


if __name__ == "__main__":
    main()
