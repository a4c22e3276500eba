"""The ``emcl`` post-processing: EMCL as an inference module (Jin et al., NeurIPS 2022), on the
embeddings of a factorised head.

Official use (jpthu17/EMCL ``video_retrieval/As_an_inference_module/modules/modeling.py`` at
1242af90, ``_similarity_TDB``): the L2-normalised video and caption features go through the EM step
of :mod:`vtrbench.heads._emcl` stacked as ``[videos; captions]``, with no training (the bases start
from the constructor's draw and are not updated), and the score is the plain product of the
outputs, not normalised again. The EM step reads every item it is given, so it is transductive.

Deliberate deviation: the official evaluation loop (CLIP2Video ``evaluation/eval.py``, which that
module plugs into) calls it once per block of ``batch_size_val`` (64) captions x 64 videos, so a
pair's score depends on which other items share its block. vtrbench applies it once to the whole
test split (every test video and caption), which is what the official code computes whenever the
split fits in one block, and makes the scores independent of any block or chunk size. The bases'
starting row is drawn from ``emcl_seed`` (the official code draws it from torch's global generator)
and recorded with the other parameters in the result's ``protocol.post_options.emcl``.

The EM step runs in float64 (the official code in float32) and the outputs are rounded back to the
embeddings' dtype before they are scored, so the tie rules of :mod:`vtrbench.eval.ranking` apply to
them as to any embeddings. Memory: the stacked features and their reconstruction, two
``(Nq + Nv) x E`` float64 arrays, plus ``(Nq + Nv) x K`` and ``E x K``; each iteration costs two
``(Nq + Nv) x E x K`` products.
"""

from __future__ import annotations

from typing import Any

import torch

from vtrbench.errors import VtrbenchError
from vtrbench.heads._emcl import em_bases, initial_bases, reconstruct

#: The parameters ``emcl`` records in the result's ``protocol.post_options``.
EMCL_PARAMS = ("emcl_k", "emcl_iters", "emcl_lambda", "emcl_beta", "emcl_seed")


def emcl_embeddings(
    text: torch.Tensor, video: torch.Tensor, options: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(text', video')``: the test captions and videos after the EM step over all of them, in
    their own dtype; ``options`` holds :data:`EMCL_PARAMS` (checked: ``config.check_post_options``)."""
    generator = torch.Generator().manual_seed(int(options["emcl_seed"]))
    start = initial_bases(int(options["emcl_k"]), generator).to(text.device, torch.float64)
    x = torch.cat([video, text]).to(torch.float64)
    mu, z = em_bases(x, start, int(options["emcl_iters"]), float(options["emcl_lambda"]))
    out = reconstruct(x, mu, z, float(options["emcl_beta"]))
    if not bool(torch.isfinite(out).all()):  # cannot happen within the options' bounds; never rank NaN
        raise VtrbenchError(
            "post-processing emcl gave non-finite embeddings; lower emcl_beta or raise emcl_lambda"
        )
    n_v = video.shape[0]
    return out[n_v:].to(text.dtype), out[:n_v].to(video.dtype)


def merge_results(
    main: dict[str, Any] | None, emcl: dict[str, Any], posts: list[str], options: dict[str, Any]
) -> dict[str, Any]:
    """One result from the evaluation of the other post-processings (``main``; None when emcl was the
    only one) and that of the EMCL embeddings (its ``raw``), keyed by ``posts`` in their order."""
    per_post_keys = ("metrics", "per_query_ranks", "per_query", "topk", "topk_scores")
    out: dict[str, Any] = {key: {} for key in per_post_keys}
    for post in posts:
        source, name = (emcl, "raw") if post == "emcl" else (main, post)
        assert source is not None
        for key in per_post_keys:
            out[key][post] = source[key][name]
    protocol = dict((main or emcl)["protocol"])
    post_options = dict(protocol.get("post_options") or {})
    # the EMCL scores are a matrix of their own: their tie scale is recorded beside the parameters
    post_options["emcl"] = {
        **{key.removeprefix("emcl_"): options[key] for key in EMCL_PARAMS},
        "tie_tolerance": emcl["protocol"]["tie_tolerance"],
    }
    protocol["post_options"] = post_options
    kinds = [r["score_matrix"] for r in (main, emcl) if r is not None]
    return {
        **out,
        "protocol": protocol,
        # the two matrices have the same size, so they live in the same place unless memory ran out
        "score_matrix": next((kind for kind in kinds if kind != "memory"), "memory"),
        "eval_s": sum(r["eval_s"] for r in (main, emcl) if r is not None),
    }
