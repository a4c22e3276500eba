"""Evaluating a trained head: embed (or compute per-item states for) the test split and hand it
to :mod:`vtrbench.eval` (chunked, with raw / dsl / qbnorm and the other post-processings); for a
pairwise head the head's block scorer goes instead (same metrics, protocols and post-processings).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vtrbench import defaults
from vtrbench.eval import evaluate_embeddings, evaluate_pairwise
from vtrbench.eval.postprocess import BANK_POSTS, EMBEDDING_POSTS
from vtrbench.heads.base import HEADS, Batch, Head, PairwiseHead
from vtrbench.heads.contract import check_logit_shape, head_who
from vtrbench.results import POSTPROCESSING
from vtrbench.runs.data import SplitData, take, text_for


@torch.no_grad()
def embed(
    head: Head, data: SplitData, *, device: str = "cpu", batch: int = defaults.EMBED_BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Nt, E) text and (Nv, E) video embeddings of a split."""
    dev = torch.device(device)
    head.to(dev).eval()
    data = text_for(head, data)
    texts = [
        head.encode_text(take(data.text, torch.arange(s, min(s + batch, data.n_texts)), dev)).float().cpu()
        for s in range(0, data.n_texts, batch)
    ]
    videos = [
        head.encode_video(take(data.video, torch.arange(s, min(s + batch, data.n_videos)), dev)).float().cpu()
        for s in range(0, data.n_videos, batch)
    ]
    return torch.cat(texts), torch.cat(videos)


@torch.no_grad()
def states(
    head: PairwiseHead, data: SplitData, *, device: str = "cpu", batch: int = defaults.EMBED_BATCH
) -> tuple[Batch, Batch]:
    """Per-caption and per-video states of a pairwise head for a split (on ``device``)."""
    dev = torch.device(device)
    head.to(dev).eval()
    data = text_for(head, data)

    def run(fn: Callable[[Batch], Batch], table: dict[str, torch.Tensor], n: int) -> Batch:
        parts = [fn(take(table, torch.arange(s, min(s + batch, n)), dev)) for s in range(0, n, batch)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    return run(head.text_state, data.text, data.n_texts), run(head.video_state, data.video, data.n_videos)


def _bank_sample(bank: SplitData, bank_size: int) -> SplitData:
    # A fixed sample (seed 0, not the run's seed) so that every run uses the same bank.
    g = torch.Generator().manual_seed(0)
    ti = torch.randperm(bank.n_texts, generator=g)[:bank_size].sort().values
    vi = torch.randperm(bank.n_videos, generator=g)[:bank_size].sort().values
    return SplitData(
        bank.name,
        {k: v.index_select(0, vi) for k, v in bank.video.items()},
        {k: v.index_select(0, ti) for k, v in bank.text.items()},
        torch.zeros(len(ti), dtype=torch.long),
        bank.video_rows,
        bank.text_rows,
    )


def evaluate_head(
    head: Head,
    test: SplitData,
    *,
    device: str = "cpu",
    bank: SplitData | None = None,
    bank_size: int = defaults.QB_BANK,
    dsl_tau: float = defaults.DSL_TAU,
    qb_beta: float = defaults.QB_BETA,
    v2t_protocol: str = defaults.V2T_PROTOCOL,
    postprocessing: tuple[str, ...] | None = None,
    progress: Any = None,
    qb_k: int = defaults.QB_K,
    mdr: str = defaults.MDR,
    block: tuple[int, int] | None = None,
    matrix_bytes: int | None = None,
    post_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of ``head`` on ``test``: the one entry point for factorised and pairwise heads.

    ``postprocessing``: None (a run's default) computes every one of ``results.POSTPROCESSING``,
    the bank-based ones (``postprocess.BANK_POSTS``) only with a ``bank``; ``post_options`` their
    parameters (``--post-option``).

    A factorised head's embeddings go to vtrbench.eval.evaluate_embeddings; a pairwise
    head's states and block scorer go to vtrbench.eval.evaluate_pairwise, scored in
    ``block`` (default: the head's ``eval_block``) caption x video blocks.
    ``progress``: an optional rich Progress; the ranking pass shows as one task on it.
    ``matrix_bytes``: the largest caption x video score matrix held in memory (default 1 GiB or
    ``$VTRBENCH_EVAL_MATRIX_BYTES``); a larger one is streamed to a temporary file.
    """
    if postprocessing is None:
        postprocessing = tuple(p for p in POSTPROCESSING if p not in BANK_POSTS or bank is not None)
        if isinstance(head, PairwiseHead):  # no embeddings to transform (emcl)
            postprocessing = tuple(p for p in postprocessing if p not in EMBEDDING_POSTS)
    use_bank = bank is not None and bool(set(BANK_POSTS) & set(postprocessing))
    posts = tuple(postprocessing)
    common: dict[str, Any] = dict(
        matrix_bytes=matrix_bytes,
        logit_scale=float(head.logit_scale().item()),
        dsl_tau=dsl_tau,
        qb_beta=qb_beta,
        qb_k=qb_k,
        mdr=mdr,
        v2t_protocol=v2t_protocol,
        postprocessing=posts,
        post_options=post_options,
        progress=_eval_task(progress, test),
    )
    if isinstance(head, PairwiseHead):
        text_state, video_state = states(head, test, device=device)
        bank_states: tuple[Batch | None, Batch | None] = (None, None)
        if use_bank:
            assert bank is not None
            bank_states = states(head, _bank_sample(bank, bank_size), device=device)
        pair_block = tuple(block or head.eval_block)
        if hasattr(head, "gallery_state"):  # e.g. ucofia's per-video Sinkhorn bias over a caption bank
            bank_text = bank_states[0]
            if bank_text is None and bank is not None:
                bank_text = states(head, _bank_sample(bank, bank_size), device=device)[0]
            video_state = head.gallery_state(video_state, bank_text, pair_block)
        out = evaluate_pairwise(
            _checked_scorer(head),
            text_state,
            video_state,
            test.text_video.to(torch.device(device)),
            block=pair_block,
            # query rows per chunk = one block side: the (chunk x gallery) score rows stay small
            chunk_size=max(pair_block),
            bank_text_state=bank_states[0],
            bank_video_state=bank_states[1],
            **common,
        )
    else:
        text_emb, video_emb = embed(head, test, device=device)
        bank_text = bank_video = None
        if use_bank:
            assert bank is not None
            bank_text, bank_video = embed(head, _bank_sample(bank, bank_size), device=device)
        out = evaluate_embeddings(
            text_emb, video_emb, test.text_video, bank_text=bank_text, bank_video=bank_video, **common
        )
    gates = gate_statistics(head, test, device=device)
    if gates is not None:
        # per query (test split order), for `vtrbench browse`: which expert each caption leans on
        out["per_query_gate"] = gates.pop("per_query")
        out["gate"] = gates
    return out


def _checked_scorer(head: PairwiseHead) -> Callable[[Batch, Batch], torch.Tensor]:
    """``head.score_states`` with its block shape checked (cheap; a plugin's wrong shape is one line)."""
    names = HEADS.names_for(type(head))
    who = head_who(names[0]) if names else f"head {type(head).__name__}"

    def score(text: Batch, video: Batch) -> torch.Tensor:
        out = head.score_states(text, video)
        n_text = next(iter(text.values())).shape[0]
        n_video = next(iter(video.values())).shape[0]
        check_logit_shape(out, n_text, n_video, who)
        return out

    return score


def _eval_task(progress: Any, data: SplitData) -> Callable[[int], None] | None:
    if progress is None:
        return None
    task = progress.add_task("eval", total=data.n_texts + data.n_videos, info="ranking", unit="queries")
    return lambda n: progress.update(task, advance=n)


@torch.no_grad()
def gate_statistics(
    head: Head, data: SplitData, *, device: str = "cpu", batch: int = defaults.EMBED_BATCH
) -> dict[str, Any] | None:
    dev = torch.device(device)
    parts: dict[str, list[torch.Tensor]] = {}
    for s in range(0, data.n_texts, batch):
        g = head.gate_weights(take(data.text, torch.arange(s, min(s + batch, data.n_texts)), dev))
        if g is None:
            return None
        for k, v in g.items():
            parts.setdefault(k, []).append(v.float().cpu())
    weights = {k: torch.cat(v) for k, v in parts.items()}
    return {
        "per_query": {k: [round(float(x), 4) for x in v.tolist()] for k, v in weights.items()},
        "mean_weight": {k: round(float(v.mean()), 6) for k, v in weights.items()},
        "std_weight": {k: round(float(v.std()), 6) if v.numel() > 1 else 0.0 for k, v in weights.items()},
    }
