"""How often does the decomposition's sentence attribute a gain falsely? (issue 27 item 1)

Simulated 2 x 2 worlds (reference / target loss x raw / target inference) with a known answer, run
through the report's own decision (:func:`vtrbench.report.decomposition.decide`: joint bootstrap
over seeds and queries, Holm over the six contrasts, the rule of the module docstring).

Each world draws per-query values the way a result file holds them (expected recall@1 of a query:
0 or 100): query ``q`` of seed ``s`` of loss ``l`` under inference ``p`` succeeds when
``Phi(z) < pi[l, p] + r[l, s]``, with ``z = sqrt(0.5) d_q + sqrt(0.4) e[l, s, q] + sqrt(0.1)
eta[l, s, p, q]`` (all standard normal: ``d`` the query's difficulty, shared by every cell; ``e`` a
trained run's own noise, shared by its two post-processings; ``eta`` the post-processing's) and
``r[l, s] ~ N(0, sd_run)`` a trained run's shift. ``Phi(z)`` is uniform, so a cell's expected
recall is exactly ``pi[l, p]``: the worlds are additive or not on the scale the report measures.

Worlds (``base`` = 0.45, ``gain`` = 0.12 by default) and the verdicts that would be false in them:

- loss only: TR = TP = base + gain; false: inference, both, interaction;
- inference only: RP = TP = base + gain; false: loss, both, interaction;
- both additive (equal gains): TR = RP = base + gain, TP = base + 2 gain; false: loss, inference,
  interaction;
- interaction (only the two together help): TP = base + gain; false: loss, inference, both;
- nothing: every cell at base; false: every verdict but "cannot tell".

    python -m benchmarks.decomposition_sim                     # the README's table (200 repetitions)
    python -m benchmarks.decomposition_sim --seeds 2 --sd-run 0.03

prints per world the share of false verdicts, the share of the world's own verdict (power) and the
share of repetitions with any false rejection among the six contrasts (the family-wise error).
:func:`synthetic_results` makes whole result files with a known answer (two worlds) for the tests.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np
import torch

from vtrbench.eval import evaluate_embeddings
from vtrbench.report.decomposition import CELLS, CONTRASTS, decide
from vtrbench.results import POSTPROCESSING, TRANSDUCTIVE

BASE, GAIN = 0.45, 0.12
WORLDS: dict[str, tuple[float, float, float, float]] = {  # (RR, TR, RP, TP) over BASE, in GAIN units
    "loss only": (0, 1, 0, 1),
    "inference only": (0, 0, 1, 1),
    "both additive": (0, 1, 1, 2),
    "interaction": (0, 0, 0, 1),
    "nothing": (0, 0, 0, 0),
}
FALSE = {
    "loss only": {"inference", "both", "interaction"},
    "inference only": {"loss", "both", "interaction"},
    "both additive": {"loss", "inference", "interaction"},
    "interaction": {"loss", "inference", "both"},
    "nothing": {"loss", "inference", "both", "interaction"},
}
OWN = {
    "loss only": "loss",
    "inference only": "inference",
    "both additive": "both",
    "interaction": "interaction",
    "nothing": "cannot tell",
}


def draw_cells(
    rng: np.random.Generator, means: tuple[float, ...], *, queries: int, seeds: int, sd_run: float
) -> dict[str, np.ndarray]:
    """The four cells ``{ref_raw, tgt_raw, ref_post, tgt_post}`` of one repetition, (seeds, queries)."""
    d = rng.standard_normal(queries)
    pi = dict(zip(CELLS, means, strict=True))
    out = {}
    for loss in ("ref", "tgt"):
        r = rng.normal(0.0, sd_run, seeds)[:, None]
        e = rng.standard_normal((seeds, queries))
        for post in ("raw", "post"):
            z = np.sqrt(0.5) * d + np.sqrt(0.4) * e + np.sqrt(0.1) * rng.standard_normal((seeds, queries))
            u = torch.special.ndtr(torch.from_numpy(z)).numpy()
            out[f"{loss}_{post}"] = 100.0 * (u < pi[f"{loss}_{post}"] + r)
    return out


def simulate(
    world: str,
    *,
    reps: int = 200,
    queries: int = 120,
    seeds: int = 3,
    sd_run: float = 0.01,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[Counter[str], int]:
    """Verdict counts over ``reps`` repetitions of ``world``, and how many had a false rejection."""
    means = tuple(BASE + GAIN * k for k in WORLDS[world])
    weights = np.array(list(CONTRASTS.values()), dtype=float)
    nulls = np.isclose(weights @ np.array(means), 0.0)  # the contrasts that are 0 in this world
    rng = np.random.default_rng([seed, list(WORLDS).index(world)])
    verdicts: Counter[str] = Counter()
    false_rejections = 0
    for k in range(reps):
        cells = draw_cells(rng, means, queries=queries, seeds=seeds, sd_run=sd_run)
        v, effects = decide(cells, n_boot=n_boot, seed=k)
        verdicts[v] += 1
        false_rejections += any(
            t.significant for t, null in zip(effects.values(), nulls, strict=True) if null
        )
    return verdicts, false_rejections


# ------------------------------------------------------------------ result files with a known answer
# (tests/report/test_decomposition.py and the report fault cases read them)

N_V, CAPS, DIM = 60, 2, 24


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def _world(hubs: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    video = _unit(torch.randn(N_V, DIM, generator=g))
    qv = torch.arange(N_V).repeat_interleave(CAPS)
    if hubs:
        # a few videos near the captions' common direction: each is everyone's near neighbour
        common = _unit(torch.randn(1, DIM, generator=g))
        video[:4] = _unit(common + 0.15 * torch.randn(4, DIM, generator=g))
    return video, qv


def _result(
    label: str, loss: str, seed: int, video: torch.Tensor, qv: torch.Tensor, noise: float, common_pull: float
) -> dict[str, Any]:
    g = torch.Generator().manual_seed(1000 * seed + 17 + int(noise * 100))
    text = video[qv] + noise * torch.randn(len(qv), DIM, generator=g)
    if common_pull:
        text = text + common_pull * video[:4].mean(0, keepdim=True)
    text = _unit(text)
    bank = _unit(video[torch.randint(0, N_V, (80,), generator=g)] + noise * torch.randn(80, DIM, generator=g))
    if common_pull:
        bank = _unit(bank + common_pull * video[:4].mean(0, keepdim=True))
    bank_video = _unit(
        text[torch.randint(0, len(qv), (80,), generator=g)] + 0.5 * torch.randn(80, DIM, generator=g)
    )
    ev = evaluate_embeddings(
        text, video, qv, logit_scale=100.0, bank_text=bank, bank_video=bank_video,
        postprocessing=POSTPROCESSING, post_options={"csls_k": 5},
    )  # fmt: skip
    return {
        "schema": 2,
        "run_id": f"toy.{label}.{loss}.s{seed}",
        "dataset": "toy",
        "kind": "train",
        "head": label,
        "loss": loss,
        "label": label,
        "config_hash": f"hash-{label}-{loss}",
        "seed": seed,
        "cache": {"fingerprint": "fp0", "model": "ViT-B-32", "pretrained": "openai", "random_weights": False},
        "protocol": {
            "test_split": "toy",
            "n_queries": len(qv),
            "n_gallery": N_V,
            "v2t_multi_caption": "clip4clip",
            "ties": "expected rank",
            "mdr": "standard",
        },
        "metrics": ev["metrics"],
        "transductive": {p: TRANSDUCTIVE[p] for p in ev["metrics"]},
        "per_query_ranks": ev["per_query_ranks"],
        "per_query": ev["per_query"],
        "topk": ev["topk"],
        "topk_scores": ev["topk_scores"],
    }


def synthetic_results(world: str) -> list[dict[str, Any]]:
    """Six schema-2 result dicts (meanP x {infonce, dsl} x 3 seeds, every post-processing) of a world
    with a known answer: ``hubs`` (the test gallery has hubs, both losses give the same embeddings:
    the inference carries the gain) or ``clean`` (no hubs, the DSL loss's embeddings much cleaner)."""
    video, qv = _world(hubs=world == "hubs")
    if world == "hubs":  # same embeddings for both losses: any gain is the inference's
        noise = {"infonce": 0.4, "dsl": 0.4}
        pull = 2.0
    else:  # no hubs, one loss's embeddings much cleaner
        noise = {"infonce": 1.1, "dsl": 0.45}
        pull = 0.0
    return [
        _result(
            "meanP",
            loss,
            seed + (10 if loss == "dsl" and world == "hubs" else 0),
            video,
            qv,
            noise[loss],
            pull,
        )
        for loss in ("infonce", "dsl")
        for seed in (0, 1, 2)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--queries", type=int, default=120)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sd-run", type=float, default=0.01)
    args = ap.parse_args()
    print(
        f"{args.reps} repetitions, {args.queries} queries, {args.seeds} seeds per loss, run sd {args.sd_run}"
    )
    print("| world | false attribution | own verdict (power) | any false rejection |")
    print("| --- | ---: | ---: | ---: |")
    for world in WORLDS:
        verdicts, fwe = simulate(
            world, reps=args.reps, queries=args.queries, seeds=args.seeds, sd_run=args.sd_run
        )
        false = sum(n for v, n in verdicts.items() if v in FALSE[world])
        print(
            f"| {world} | {false / args.reps:.3f} | {verdicts[OWN[world]] / args.reps:.3f} | "
            f"{fwe / args.reps:.3f} |"
        )


if __name__ == "__main__":
    main()
