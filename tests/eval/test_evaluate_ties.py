"""Ties do not depend on how the work is cut (issue 18 item 2).

Reversed twin videos score the same for an order-free head up to float rounding, and that rounding
changes with the block shape of a pairwise head and the chunk size. Ties are decided with the
documented tolerance (``metrics.TIE_RTOL``), so every block and chunk gives the same per-query counts
for raw, dsl and qbnorm; with the tolerance set to 0 they do not.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pairwise import D, P, build

from vtrbench.eval import evaluate_pairwise, ranking
from vtrbench.heads import tmass, ucofia
from vtrbench.metrics import TIE_RTOL, gt_counts
from vtrbench.runs.data import SplitData
from vtrbench.runs.scoring import states

T = 5
RUNS = [((1, 1), 1), ((2, 3), 4), ((7, 5), 3), ((256, 256), 1024)]


def twins(n_pairs: int, n_caps: int, seed: int, reverse: bool = True) -> tuple[dict, dict, torch.Tensor]:
    """Videos ``i`` and ``i + n_pairs`` show the same frames in reverse order (``reverse=False``: in
    the same order, moved by 1e-9 relative, for heads that read the order); two captions each."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(n_pairs, T, D, generator=g)
    patches = torch.randn(n_pairs, T, P, D, generator=g)
    if reverse:
        frames, patches = torch.cat([frames, frames.flip(1)]), torch.cat([patches, patches.flip(1)])
    else:
        near = 1.0 + 1e-9 * torch.randn(n_pairs, T, 1, generator=g)
        frames, patches = torch.cat([frames, frames * near]), torch.cat([patches, patches])
    video = {
        "frames": frames,
        "frame_mask": torch.ones(2 * n_pairs, T, dtype=torch.bool),
        "patches": patches,
    }
    qv = torch.arange(n_caps) % (2 * n_pairs)
    counts = torch.randint(2, 7, (n_caps,), generator=g)
    text = {
        "tokens": torch.randn(n_caps, 6, D, generator=g) + 2 * frames[qv].mean(1, keepdim=True),
        "token_mask": torch.arange(6)[None] < counts[:, None],
        "eot": (counts - 1).long(),
    }
    return text, video, qv


class MeanPool(torch.nn.Module):
    """A meanP-like scorer: caption EOT token against the mean of the frames, no learnt weights."""

    eval_block = (64, 64)

    def text_state(self, batch: dict) -> dict:
        rows = torch.arange(batch["tokens"].shape[0])
        return {"t": batch["tokens"][rows, batch["eot"].long()]}

    def video_state(self, batch: dict) -> dict:
        return {"frames": batch["frames"]}

    def score_states(self, text: dict, video: dict) -> torch.Tensor:
        # the mean is taken per block, so the reversed twin's sum runs in another order
        return (
            torch.nn.functional.normalize(text["t"], dim=-1)
            @ torch.nn.functional.normalize(video["frames"].sum(1), dim=-1).T
        )


def _states(name: str, text: dict, video: dict, qv: torch.Tensor):
    if name == "meanpool":
        head = MeanPool()
        return head, head.text_state(text), head.video_state(video)
    head = build(name, seed=1)
    if name == "tmass":
        # order-free radius (each row of W constant over the frames), so reversed twins tie
        with torch.no_grad():
            w = head.radius.linear.weight
            w.copy_(w[:, :1].expand_as(w))
    n_v, n_t = video["frames"].shape[0], text["tokens"].shape[0]
    data = SplitData("t", video, text, qv, np.arange(n_v), np.arange(n_t))
    ts, vs = states(head, data)
    return head, ts, vs


#: heads whose scores read the frame order: their twins are near-copies, not reversed
ORDERED = ("ucofia",)


def _run(name: str) -> list[dict]:
    text, video, qv = twins(8, 40, seed=3, reverse=name not in ORDERED)
    bank_text, bank_video, _ = twins(6, 20, seed=4, reverse=name not in ORDERED)
    head, ts, vs = _states(name, text, video, qv)
    _, bts, bvs = _states(name, bank_text, bank_video, torch.arange(20) % 12)
    if name == "meanpool":
        bts, bvs = head.text_state(bank_text), head.video_state(bank_video)
    out = []
    for block, chunk in RUNS:
        out.append(
            evaluate_pairwise(
                head.score_states,
                ts,
                vs,
                qv,
                logit_scale=100.0,
                block=block,
                chunk_size=chunk,
                bank_text_state=bts,
                bank_video_state=bvs,
                qb_beta=20.0,
            )  # fmt: skip
        )
    return out


@pytest.mark.parametrize("name", ["xpool", "wti", "tmass", "ucofia", "meanpool"])
def test_reversed_twins_give_the_same_counts_for_every_block_and_chunk(name: str) -> None:
    results = _run(name)
    first = results[0]
    assert set(first["per_query"]) == {"raw", "dsl", "qbnorm"}
    for res, (block, chunk) in zip(results[1:], RUNS[1:], strict=True):
        assert res["per_query"] == first["per_query"], (name, block, chunk)
        assert res["metrics"] == first["metrics"], (name, block, chunk)
    # the twins are tied: every caption's video ties at least its twin, after every post-processing
    for post, dirs in first["per_query"].items():
        assert min(dirs["t2v"]["tied"]) >= 1, post
    assert first["protocol"]["tie_tolerance"]["relative"] == TIE_RTOL


@pytest.mark.parametrize("tile", [1, 3 * 40 * D])  # one video; 3 videos of the 40 captions
def test_tmass_video_tiles_give_the_same_counts(monkeypatch: pytest.MonkeyPatch, tile: int) -> None:
    # tmass scores a block a tile of videos at a time (cache-sized; TILE_ELEMENTS values per tile):
    # one video per tile, and tiles that cut the blocks raggedly, count exactly as the default tiles
    default = _run("tmass")
    monkeypatch.setattr(tmass, "TILE_ELEMENTS", tile)
    for res, ref in zip(_run("tmass"), default, strict=True):
        assert res["per_query"] == ref["per_query"]
        assert res["metrics"] == ref["metrics"]


def test_ucofia_counts_do_not_depend_on_its_evaluation_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    # ucofia's evaluation builds its word-token similarities a few videos at a time (EVAL_CHUNK):
    # one video per chunk gives the counts of the whole block at once, for every block and chunk
    whole = _run("ucofia")
    monkeypatch.setattr(ucofia, "EVAL_CHUNK", 1)
    for res, ref in zip(_run("ucofia"), whole, strict=True):
        assert res["per_query"] == ref["per_query"] and res["metrics"] == ref["metrics"]


def test_without_the_tolerance_the_blocks_change_the_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    # the test above has teeth: the twins' scores differ in the last bits, differently per block,
    # and with exact ties (tolerance 0) every head's counts change with the blocks
    # ranking reads TIE_RTOL as its module global when an evaluation runs
    monkeypatch.setattr(ranking, "TIE_RTOL", 0.0)
    changed = {}
    for name in ("xpool", "wti", "tmass", "meanpool"):
        results = _run(name)
        first = results[0]["per_query"]
        changed[name] = all(r["per_query"][p] != first[p] for r in results[1:] for p in first)
    assert all(changed.values()), changed


def test_tolerance_is_relative_to_the_scale_and_counts_higher_beyond_it() -> None:
    s = torch.tensor([[1.0, 1.0 + 1e-7, 1.0 - 3e-6, 0.5, 1.0 + 1e-5]], dtype=torch.float64)
    exact = gt_counts(s, torch.tensor([0]))
    assert (exact.higher[0], exact.tied[0]) == (2, 0)
    band = gt_counts(s, torch.tensor([0]), slack=TIE_RTOL)  # 2^-20 each: a band of 1.9e-6
    assert (band.higher[0], band.tied[0]) == (1, 1)
    # the same scores times 1000 with a slack times 1000: the same counts
    scaled = gt_counts(s * 1000, torch.tensor([0]), slack=TIE_RTOL * 1000)
    assert (scaled.higher[0], scaled.tied[0]) == (1, 1)
