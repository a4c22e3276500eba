"""Plugin authors subclass ucofia's multi-level alignment block (``CoarseToFineHead``) and its
interaction-aware aggregation (``isa``): a tiny two-level subclass in a plugin file passes the head
contract's dry runs (heads/contract.py, whose video batches carry patch tokens) and scores the
weighted sum of its levels, checked against the formulas written out here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_plugins import isolated_registries  # noqa: F401 - autouse: plugins loaded here are forgotten

from vtrbench import plugins
from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head
from vtrbench.heads.contract import dry_batches

PLUGIN = '''
import torch
from torch import nn
from vtrbench.heads.base import register_head
from vtrbench.heads.ucofia import CoarseToFineHead, isa, mask_bias


@register_head("twolevel")
class TwoLevel(CoarseToFineHead):
    """Level 1: EOT . mean frame; level 2: ISA over frames of EOT . frame, then patches (mean)."""

    head_name = "twolevel"
    level_weights = WEIGHTS

    def __init__(self, embed_dim, **options):
        super().__init__(embed_dim, options, adapter=False)
        self.frame_isa = nn.Parameter(torch.eye(8) + 0.1)
        self.proj = nn.Linear(embed_dim, embed_dim)

    def text_state(self, batch):
        rows = torch.arange(batch["tokens"].shape[0])
        return {"eot": self.proj(batch["tokens"][rows, batch["eot"].long()])}

    def video_state(self, batch):
        m = batch["frame_mask"].bool()
        frames = batch["frames"] * m[..., None] + batch["patches"].mean(2) * m[..., None]
        mean = frames.sum(1) / m.sum(1, keepdim=True).clamp_min(1)
        return {"mean": mean, "frames": frames, "bias": mask_bias(m, frames.dtype)}

    def level_scores(self, text, video):
        sim = torch.einsum("qd,vtd->qvt", text["eot"], video["frames"])
        return [text["eot"] @ video["mean"].t(), isa(sim, self.frame_isa, video["bias"][None], 0.5)]
'''


def _load(tmp_path: Path, weights: str) -> None:
    path = tmp_path / "twolevel.py"
    path.write_text(PLUGIN.replace("WEIGHTS", weights))
    plugins.load_plugin(str(path))


def test_a_subclass_passes_the_contract_and_scores_the_weighted_levels(tmp_path: Path) -> None:
    _load(tmp_path, "(0.25, 0.75)")
    head = create_head("twolevel", embed_dim=8)  # the contract's dry runs, patch tokens included
    text, video = dry_batches(8, n_text=3, n_video=4)
    with torch.no_grad():
        got = head.score(text, video)
        # the oracle: both levels and the ISA written out
        eot = head.proj(text["tokens"][torch.arange(3), text["eot"]])
        m = video["frame_mask"].float()
        frames = (video["frames"] + video["patches"].mean(2)) * m[..., None]
        mean = frames.sum(1) / m.sum(1, keepdim=True)
        level1 = eot @ mean.t()
        want2 = torch.empty(3, 4)
        w = head.frame_isa[:4, :4]
        for q in range(3):
            for v in range(4):
                valid = video["frame_mask"][v]
                s = frames[v][valid] @ eot[q]
                first = torch.softmax(s / 0.5, 0)
                second = torch.softmax(first @ w[valid][:, valid] / 0.5, 0)
                want2[q, v] = (second * s).sum()
    torch.testing.assert_close(got, 0.25 * level1 + 0.75 * want2, rtol=1e-5, atol=1e-6)


def test_a_subclass_with_the_wrong_number_of_weights_is_one_line(tmp_path: Path) -> None:
    _load(tmp_path, "(1.0,)")
    with pytest.raises(VtrbenchError) as err:
        create_head("twolevel", embed_dim=8)
    text = str(err.value)
    assert "\n" not in text and "twolevel" in text and "1 level weights for 2 levels" in text
