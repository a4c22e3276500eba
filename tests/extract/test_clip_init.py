"""seqtransf / camoe start where CLIP4Clip starts (issue 8, item 3).

The reference below re-implements CLIP4Clip's seqTransf video path from reading
ArrowLuo/CLIP4Clip (modules/modeling.py ``_loose_similarity`` and ``from_pretrained``,
modules/module_cross.py ``Transformer``/``ResidualAttentionBlock``, modules/until_module.py
``LayerNorm``), with torch's own ``nn.MultiheadAttention`` as CLIP4Clip uses it:

- ``frame_position_embeddings`` = nn.Embedding(77, D) loaded from CLIP's ``positional_embedding``,
  ``transformerClip.resblocks.i`` loaded from CLIP's ``transformer.resblocks.i`` for i < 4;
- x = frames + pos; additive mask (1 - mask) * -1e6 over keys, expanded over queries and
  repeated per head with ``repeat_interleave`` (CLIP4Clip after its PR #24; the older ``repeat``
  paired masks with the wrong videos, ArrowLuo/CLIP4Clip#22); blocks run LND;
- blocks: x + attn(LN(x)); x + c_proj(QuickGELU(c_fc(LN(x)))), TF-style LayerNorm, eps 1e-12;
- output + input frames; unit per frame; mean over valid frames (an empty mask divides by 1);
  unit.

The weights come from a real open_clip model whose text width equals its embedding width (a
small config registered here), with every text parameter perturbed so that no LayerNorm sits
at (1, 0) and no bias at 0.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from pathlib import Path

import h5py
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head

TEST_MODEL = "vtrbench-test-clipinit"
# Text width = embedding width (so extraction stores the text layers), 2 heads of 64 like
# CLIP4Clip's width // 64, 5 text layers (one more than is stored).
TEST_MODEL_CONFIG = {
    "embed_dim": 128,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 5},
}
D = 128
MAX_ABS_DIFF = 1e-4


@pytest.fixture(scope="module")
def test_model_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    import open_clip

    from vtrbench.extract.encode import list_models

    list_models()  # vtrbench's own configs first
    cfg_dir = tmp_path_factory.mktemp("model_configs")
    (cfg_dir / f"{TEST_MODEL}.json").write_text(json.dumps(TEST_MODEL_CONFIG))
    open_clip.add_model_config(cfg_dir)
    return TEST_MODEL


@pytest.fixture(scope="module")
def clip_model(test_model_name: str) -> nn.Module:
    """The open_clip model with every text-tower parameter moved off its initial value."""
    import open_clip

    torch.manual_seed(1)
    model = open_clip.create_model(test_model_name, pretrained=None)
    with torch.no_grad():
        model.positional_embedding.normal_(0.0, 0.3)
        for name, p in model.transformer.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.mul_(1.5)
    return model.eval()


# ---------------------------------------------------------------- the reference (CLIP4Clip)


class RefLayerNorm(nn.Module):
    """CLIP4Clip until_module.LayerNorm: TF style, epsilon inside the square root, eps 1e-12."""

    def __init__(self, width: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + self.eps)) + self.bias


class RefQuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class RefBlock(nn.Module):
    def __init__(self, width: int, n_head: int, mask_layout: str) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, n_head)
        self.ln_1 = RefLayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, width * 4)),
                    ("gelu", RefQuickGELU()),
                    ("c_proj", nn.Linear(width * 4, width)),
                ]
            )
        )
        self.ln_2 = RefLayerNorm(width)
        self.n_head = n_head
        self.mask_layout = mask_layout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        if self.mask_layout == "repeat_interleave":
            mask = attn_mask.repeat_interleave(self.n_head, dim=0)
        else:  # CLIP4Clip before PR #24
            mask = attn_mask.repeat(self.n_head, 1, 1)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class RefSeqTransf(nn.Module):
    """CLIP4Clip's seqTransf video path (sim_header="seqTransf", loose type)."""

    def __init__(self, width: int, layers: int, heads: int, mask_layout: str = "repeat_interleave") -> None:
        super().__init__()
        self.frame_position_embeddings = nn.Embedding(77, width)
        self.transformerClip = nn.ModuleList(RefBlock(width, heads, mask_layout) for _ in range(layers))

    def load_from_clip(self, clip_state: dict[str, torch.Tensor]) -> None:
        """CLIP4Clip's from_pretrained: positional_embedding and transformer.resblocks.i (i < layers)."""
        state = {"frame_position_embeddings.weight": clip_state["positional_embedding"]}
        for key, value in clip_state.items():
            if key.startswith("transformer.resblocks."):
                layer = int(key.split(".")[2])
                if layer < len(self.transformerClip):
                    state[key.replace("transformer.resblocks.", "transformerClip.")] = value
        missing, unexpected = self.load_state_dict(state, strict=False)
        assert not missing and not unexpected, (missing, unexpected)

    def aggregate(self, visual_output: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """The per-frame output before pooling: DRL's ``agg_video_feat`` with agg_module seqTransf."""
        original = visual_output
        t = visual_output.shape[1]
        position_ids = torch.arange(t).unsqueeze(0).expand(visual_output.shape[0], -1)
        x = visual_output + self.frame_position_embeddings(position_ids)
        extended = (1.0 - video_mask.float().unsqueeze(1)) * -1000000.0
        extended = extended.expand(-1, t, -1)
        x = x.permute(1, 0, 2)
        for block in self.transformerClip:
            x = block(x, extended)
        return x.permute(1, 0, 2) + original

    def forward(self, visual_output: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        original = visual_output
        t = visual_output.shape[1]
        position_ids = torch.arange(t).unsqueeze(0).expand(visual_output.shape[0], -1)
        x = visual_output + self.frame_position_embeddings(position_ids)
        extended = (1.0 - video_mask.float().unsqueeze(1)) * -1000000.0
        extended = extended.expand(-1, t, -1)
        x = x.permute(1, 0, 2)
        for block in self.transformerClip:
            x = block(x, extended)
        x = x.permute(1, 0, 2) + original
        x = x / x.norm(dim=-1, keepdim=True)
        m = video_mask.float().unsqueeze(-1)
        total = m.sum(1)
        total[total == 0.0] = 1.0
        pooled = (x * m).sum(1) / total
        return pooled / pooled.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------- helpers


def _export(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict]:
    """What extraction stores for ``model`` and what the cache reader gives back, via a real
    HDF5 round trip is tested below; here the export is read directly."""
    from vtrbench.extract.backbone import text_tower_init

    export = text_tower_init(model, int(model.text_projection.shape[1]))
    assert export.stored, export.attrs
    weights = {k: torch.from_numpy(v) for k, v in export.arrays.items()}
    return weights, {**export.attrs, "stored": True}


def _inputs(seed: int, batch: int = 6, frames: int = 12) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, D, generator=g) * 0.5
    lengths = torch.tensor([frames, 1, 5, frames - 1, 3, 8])[:batch]
    mask = torch.arange(frames)[None, :] < lengths[:, None]
    return {"frames": x, "frame_mask": mask}


# ---------------------------------------------------------------- acceptance: equals CLIP4Clip


def test_seqtransf_clip_init_equals_clip4clip_seqtransf(clip_model):
    weights, info = _export(clip_model)
    head = create_head("seqtransf", embed_dim=D, init="clip", heads=info["heads"]).eval()
    head.init_from(weights, info)
    ref = RefSeqTransf(D, layers=4, heads=2).eval()
    ref.load_from_clip(clip_model.state_dict())
    for seed in (0, 1):
        batch = _inputs(seed)
        with torch.no_grad():
            ours = head.encode_video(batch)
            theirs = ref(batch["frames"], batch["frame_mask"])
        diff = (ours - theirs).abs().max().item()
        assert diff <= MAX_ABS_DIFF, diff


def test_the_comparison_can_fail(clip_model):
    """The check above is sensitive: a random start, one layer fewer, or CLIP4Clip's pre-#24
    mask layout all give outputs far outside the tolerance on the same inputs."""
    weights, info = _export(clip_model)
    batch = _inputs(0)
    ref = RefSeqTransf(D, layers=4, heads=2).eval()
    ref.load_from_clip(clip_model.state_dict())
    with torch.no_grad():
        theirs = ref(batch["frames"], batch["frame_mask"])
        torch.manual_seed(0)
        random_head = create_head("seqtransf", embed_dim=D, init="random", heads=2).eval()
        assert (random_head.encode_video(batch) - theirs).abs().max() > 100 * MAX_ABS_DIFF
        shallow = create_head("seqtransf", embed_dim=D, init="clip", layers=3, heads=2).eval()
        shallow.init_from(weights, info)
        assert (shallow.encode_video(batch) - theirs).abs().max() > 100 * MAX_ABS_DIFF
        old = RefSeqTransf(D, layers=4, heads=2, mask_layout="repeat").eval()
        old.load_from_clip(clip_model.state_dict())
        assert (old(batch["frames"], batch["frame_mask"]) - theirs).abs().max() > 100 * MAX_ABS_DIFF


def test_camoe_fusion_expert_with_clip_init_is_clip4clip_seqtransf(clip_model):
    """CAMoE's fusion expert is the seqTransf stream: with init=clip and as many layers as
    CLIP4Clip it computes the same video embedding."""
    weights, info = _export(clip_model)
    head = create_head("camoe", embed_dim=D, experts="fusion", layers=4, init="clip", heads=2).eval()
    head.init_from(weights, info)
    ref = RefSeqTransf(D, layers=4, heads=2).eval()
    ref.load_from_clip(clip_model.state_dict())
    batch = _inputs(2)
    with torch.no_grad():
        diff = (head.encode_video(batch) - ref(batch["frames"], batch["frame_mask"])).abs().max().item()
    assert diff <= MAX_ABS_DIFF, diff


def test_init_clip_copies_exactly_the_clip_tensors(clip_model):
    weights, info = _export(clip_model)
    head = create_head("camoe", embed_dim=D, init="clip", heads=2, max_frames=20)
    head.init_from(weights, info)
    sd = clip_model.state_dict()
    for expert in ("action", "fusion"):
        enc = head.video_experts[expert].temporal
        torch.testing.assert_close(enc.position.weight, sd["positional_embedding"][:20], rtol=0, atol=0)
        for i, block in enumerate(enc.transformer.blocks):  # camoe's 2 layers: text layers 0, 1
            p = f"transformer.resblocks.{i}."
            torch.testing.assert_close(block.attn.qkv.weight, sd[p + "attn.in_proj_weight"], rtol=0, atol=0)
            torch.testing.assert_close(block.mlp[2].bias, sd[p + "mlp.c_proj.bias"], rtol=0, atol=0)
            torch.testing.assert_close(block.ln_2.weight, sd[p + "ln_2.weight"], rtol=0, atol=0)


def test_init_from_refuses_weights_that_do_not_fit(clip_model):
    weights, info = _export(clip_model)
    with pytest.raises(VtrbenchError, match="layers=5 but the cache holds CLIP text layers 0-3"):
        create_head("seqtransf", embed_dim=D, init="clip", layers=5, heads=2).init_from(weights, info)
    with pytest.raises(VtrbenchError, match="heads=4 but CLIP's text layers have 2"):
        create_head("seqtransf", embed_dim=D, init="clip", heads=4).init_from(weights, info)
    with pytest.raises(VtrbenchError, match="init=clip applies to the temporal experts"):
        create_head("camoe", embed_dim=D, experts="entity,scene", init="clip")
    head = create_head("seqtransf", embed_dim=D, init="clip", heads=2)
    with pytest.raises(VtrbenchError, match="before init_from"):
        head.train().encode_video(_inputs(0))


def test_a_fresh_random_stack_is_not_near_the_identity():
    """What _layers.Transformer's docstring says: CLIP's random scheme does not start near the
    identity (relative distance of the output from the input, unit-scale inputs, 4 layers)."""
    from vtrbench.heads._layers import Transformer

    torch.manual_seed(0)
    x = torch.randn(8, 12, D)
    with torch.no_grad():
        y = Transformer(D, 4, 8)(x, torch.ones(8, 12, dtype=torch.bool))
    assert ((y - x).norm() / x.norm()).item() > 0.5


# ---------------------------------------------------------------- extraction → cache → train


def test_backbone_export_of_a_mismatched_width_stores_nothing(tiny_clip):
    from vtrbench.extract.backbone import text_tower_init

    export = text_tower_init(tiny_clip.model, tiny_clip.embed_dim)  # vtrbench-tiny: text 128, embed 64
    assert not export.stored and "text width 128 differs from the embedding width 64" in export.summary()


@pytest.fixture(scope="module")
def clipinit_cache(test_model_name, synth_extract_argv, tmp_path_factory) -> Path:
    from tests.conftest import invoke_cli

    out = tmp_path_factory.mktemp("clipinit") / "c.h5"
    argv = synth_extract_argv(out)
    argv[argv.index("--model") + 1] = test_model_name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = invoke_cli(*argv)
    assert r.code == 0, r.text
    return out


def test_extraction_stores_the_text_layers_in_the_cache(clipinit_cache, test_model_name):
    from vtrbench.cache import FeatureCache
    from vtrbench.extract.encode import load_clip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_clip(test_model_name, "none").model  # the same seeded random weights
    sd = model.state_dict()
    with FeatureCache(clipinit_cache) as cache:
        info = cache.backbone_info()
        weights = cache.backbone_weights()
        summary = cache.attrs["backbone"]
    assert info["stored"] and (info["width"], info["heads"], info["layers"]) == (D, 2, 4)
    assert info["activation"] == "quick_gelu" and "text layers 0-3" in summary
    assert weights is not None
    stored_layers = {
        k[len("transformer.") :]
        for k in sd
        if k.startswith("transformer.resblocks.") and int(k.split(".")[2]) < 4
    }
    assert set(weights) == {"positional_embedding"} | stored_layers
    for key, value in weights.items():
        src = sd[key if key == "positional_embedding" else "transformer." + key]
        torch.testing.assert_close(value, src.float(), rtol=0, atol=0)


def test_train_init_clip_loads_the_cached_weights(clipinit_cache, run_cli, tmp_path, monkeypatch):
    """`vtrbench train` (default init where the cache holds the layers = clip) starts the head
    from exactly the cached tensors; the result's config and label say so."""
    import vtrbench.runs.train as train_mod
    from vtrbench.cache import FeatureCache

    seen: dict[str, torch.Tensor] = {}
    real_fit = train_mod.fit

    def spy_fit(head, *args, **kwargs):
        seen.update({k: v.detach().clone() for k, v in head.state_dict().items()})
        return real_fit(head, *args, **kwargs)

    monkeypatch.setattr(train_mod, "fit", spy_fit)
    r = run_cli(
        "train", "--cache", clipinit_cache, "--head", "seqtransf", "--loss", "infonce",
        "--epochs", "1", "--batch-size", "8", "--results", tmp_path, "--quiet",
    )  # fmt: skip
    assert r.code == 0, r.text
    with FeatureCache(clipinit_cache) as cache:
        weights = cache.backbone_weights()
    assert weights is not None
    torch.testing.assert_close(
        seen["temporal.position.weight"], weights["positional_embedding"][:64], rtol=0, atol=0
    )
    for i in range(4):
        torch.testing.assert_close(
            seen[f"temporal.transformer.blocks.{i}.attn.qkv.weight"],
            weights[f"resblocks.{i}.attn.in_proj_weight"],
            rtol=0,
            atol=0,
        )
    (path,) = tmp_path.rglob("*.json")
    result = json.loads(path.read_text())
    assert result["config"]["head_options"]["init"] == "clip"
    assert result["config"]["head_options"]["layers"] == 4
    assert result["label"] == "seqtransf[layers=4,init=clip]"


def test_train_without_cached_layers_falls_back_with_a_note(synth_cache, run_cli, tmp_path):
    r = run_cli(
        "train", "--cache", synth_cache, "--head", "seqtransf", "--loss", "infonce",
        "--epochs", "1", "--batch-size", "8", "--results", tmp_path, "--quiet",
    )  # fmt: skip
    assert r.code == 0, r.text
    assert "note:" in r.err and "init=random" in r.err and "text width 128 differs" in r.err
    (path,) = tmp_path.rglob("*.json")
    result = json.loads(path.read_text())
    assert result["config"]["head_options"]["init"] == "random"
    assert result["label"] == "seqtransf[layers=4,init=random]"


def test_init_clip_on_a_cache_without_layers_is_a_clear_error(synth_cache, run_cli, tmp_path):
    r = run_cli(
        "train", "--cache", synth_cache, "--head", "camoe", "--init", "clip",
        "--epochs", "1", "--results", tmp_path, "--quiet",
    )  # fmt: skip
    assert r.code == 2 and "error:" in r.err and "init=clip is not possible" in r.err
    assert "Traceback" not in r.text and not list(tmp_path.rglob("*.json"))


def test_old_cache_without_backbone_attribute_says_re_extract(synth_cache, tmp_path):
    from vtrbench.cache import FeatureCache
    from vtrbench.heads.seqtransf import SeqTransfHead

    old = tmp_path / "old.h5"
    old.write_bytes(Path(synth_cache).read_bytes())
    with h5py.File(old, "r+") as f:
        for key in ("backbone", "backbone_stored"):
            if key in f.attrs:
                del f.attrs[key]
    with FeatureCache(old) as cache:
        info = cache.backbone_info()
    assert not info["stored"] and "re-extract with --overwrite" in info["reason"]
    options, note = SeqTransfHead.resolve_options({}, info, 64)
    assert options["init"] == "random" and note is not None and "re-extract" in note


def test_init_and_layers_only_apply_to_temporal_heads(synth_cache, run_cli, tmp_path):
    r = run_cli("train", "--cache", synth_cache, "--head", "meanp", "--init", "clip", "--results", tmp_path)
    assert r.code == 2 and "--init only apply to --head seqtransf or camoe" in r.err
    r = run_cli("train", "--cache", synth_cache, "--head", "meanp", "--layers", "2", "--results", tmp_path)
    assert r.code == 2 and "--layers only apply" in r.err


def test_positional_rows_beyond_clip_context_refuse_clip_init():
    from vtrbench.heads._layers import backbone_misfit

    info = {"stored": True, "width": D, "heads": 2, "layers": 4, "context_length": 77, "activation": "gelu"}
    assert backbone_misfit(info, width=D, layers=4, heads=None, max_frames=77) is None
    assert "exceeds CLIP's 77 text positions" in backbone_misfit(
        info, width=D, layers=4, heads=None, max_frames=78
    )
    assert "differs from the embedding width 64" in backbone_misfit(
        info, width=64, layers=4, heads=None, max_frames=8
    )


# ---------------------------------------------------------------- ablation grids


def test_grid_temporal_axes_cross_only_the_temporal_heads(tmp_path):
    from vtrbench.runs.grid import Grid, load_grid

    grid = Grid(heads=("meanp", "seqtransf", "camoe"), losses=("dsl",), init=("clip", "random"), layers=(2,))
    points = [(h, o) for h, _, o, _ in grid.points()]
    assert points == [
        ("meanp", {}),
        ("seqtransf", {"init": "clip", "layers": 2}),
        ("seqtransf", {"init": "random", "layers": 2}),
        ("camoe", {"init": "clip", "layers": 2}),
        ("camoe", {"init": "random", "layers": 2}),
    ]
    path = tmp_path / "g.toml"
    path.write_text(grid.to_toml())
    assert load_grid(path) == grid
    path.write_text('heads = ["seqtransf"]\n[temporal]\ninit = ["clp"]\n')
    with pytest.raises(
        VtrbenchError, match=r"g.toml: \[temporal\] unknown grid init 'clp'; did you mean 'clip'"
    ):
        load_grid(path)
    path.write_text('heads = ["seqtransf"]\n[temporal]\nlayers = [0]\n')
    with pytest.raises(VtrbenchError, match=r"\[temporal\] grid option layers must be a positive integer"):
        load_grid(path)
    path.write_text('heads = ["seqtransf"]\n[temporal]\ndepth = [2]\n')
    with pytest.raises(VtrbenchError, match=r"unknown temporal key"):
        load_grid(path)


def test_ablate_grid_compares_clip_and_random_starts(clipinit_cache, run_cli, tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text(
        'heads = ["seqtransf"]\nlosses = ["infonce"]\nseeds = [0]\n[temporal]\ninit = ["clip", "random"]\n'
        "layers = [2]\n[train]\nepochs = 1\nbatch_size = 8\n"
    )
    r = run_cli("ablate", "--cache", clipinit_cache, "--grid", grid, "--results", tmp_path / "r", "--quiet")
    assert r.code == 0, r.text
    labels = sorted(json.loads(p.read_text())["label"] for p in (tmp_path / "r").rglob("*.json"))
    assert labels == ["seqtransf[layers=2,init=clip]", "seqtransf[layers=2,init=random]"]


def test_assembly_never_drops_promised_backbone_weights(tmp_path):
    from vtrbench.cache import Manifest, assemble

    manifest = Manifest(
        config={},
        config_hash="x",
        video_ids=[],
        video_paths=[],
        captions=[],
        text_video=[],
        splits={},
        video_chunk=1,
        text_chunk=1,
        attrs={"backbone_stored": True},
    )
    with pytest.raises(VtrbenchError, match="backbone weights part backbone.h5 is missing"):
        assemble(tmp_path / "c.h5", manifest)
    assert not (tmp_path / "c.h5").exists()


def test_resumed_extraction_rewrites_a_lost_backbone_part(
    test_model_name, synth_extract_argv, run_cli, tmp_path, monkeypatch, clipinit_cache
):
    """Killed before assembly and the backbone part gone: the resumed run writes it again, and
    the cache holds the same tensors as an uninterrupted extraction."""
    import vtrbench.extract.pipeline as pipeline
    from vtrbench.cache import FeatureCache, backbone_part_path

    out = tmp_path / "c.h5"
    argv = synth_extract_argv(out)
    argv[argv.index("--model") + 1] = test_model_name

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "assemble", killed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run_cli(*argv)
    assert r.code != 0 and not out.exists()
    backbone_part_path(out).unlink()
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run_cli(*argv)
    assert r.code == 0, r.text
    with FeatureCache(out) as resumed, FeatureCache(clipinit_cache) as whole:
        a, b = resumed.backbone_weights(), whole.backbone_weights()
        assert resumed.backbone_info() == whole.backbone_info()
    assert a is not None and b is not None and a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


# ---------------------------------------------------------------- issue 18.4: the references' own starts
#
# CLIP4Clip's tightTransf (modules/modeling.py ``from_pretrained``, sim_header "tightTransf": the
# cross model's position table = CLIP's positional_embedding, cross.transformer.resblocks.i = CLIP's
# transformer.resblocks.i for i < cross_num_hidden_layers; module_cross.CrossModel + CrossPooler with
# the TF-style LayerNorm, eps 1e-12; ``_cross_similarity``) and DRL's WTI with --agg_module seqTransf
# (tvr/models/modeling.py ``agg_video_feat`` then ``wti_interaction``), re-implemented from reading.


class RefTightTransf(nn.Module):
    """CLIP4Clip's cross model and similarity head for one caption (EOT feature) per pair."""

    def __init__(self, width: int, layers: int, heads: int, mask_layout: str) -> None:
        super().__init__()
        self.position_embeddings = nn.Embedding(77, width)
        self.resblocks = nn.ModuleList(RefBlock(width, heads, mask_layout) for _ in range(layers))
        self.ln_pool = RefLayerNorm(width)
        self.dense = nn.Linear(width, width)
        self.similarity_dense = nn.Linear(width, 1)

    def load_from_clip(self, clip_state: dict[str, torch.Tensor]) -> None:
        state = {"position_embeddings.weight": clip_state["positional_embedding"]}
        for key, value in clip_state.items():
            if key.startswith("transformer.resblocks.") and int(key.split(".")[2]) < len(self.resblocks):
                state[key[len("transformer.") :]] = value
        missing, unexpected = self.load_state_dict(state, strict=False)
        assert not unexpected and all(k.startswith(("ln_pool", "dense", "similarity")) for k in missing)

    def forward(self, eot: torch.Tensor, frames: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        bt, bv, t = eot.shape[0], frames.shape[0], frames.shape[1]
        seq = eot[:, None, None].expand(bt, bv, 1, -1).reshape(bt * bv, 1, -1)
        vis = frames[None].expand(bt, bv, t, -1).reshape(bt * bv, t, -1)
        frame_mask = video_mask[None].expand(bt, bv, t).reshape(bt * bv, t).float()
        mask = torch.cat([torch.ones(bt * bv, 1), frame_mask], 1)
        x = torch.cat([seq, vis], 1)
        x = x + self.position_embeddings(torch.arange(1 + t))[None]
        ext = ((1.0 - mask.unsqueeze(1)) * -1000000.0).expand(-1, 1 + t, -1)
        x = x.permute(1, 0, 2)
        for block in self.resblocks:
            x = block(x, ext)
        h = self.ln_pool(x.permute(1, 0, 2))[:, 0]
        pooled = RefQuickGELU()(self.dense(h))
        return self.similarity_dense(pooled).reshape(bt, bv)


def _tight_pair(clip_model, mask_layout: str):
    weights, info = _export(clip_model)
    torch.manual_seed(5)
    ref = RefTightTransf(D, layers=4, heads=2, mask_layout=mask_layout).eval()
    ref.load_from_clip(clip_model.state_dict())
    with torch.no_grad():  # the pooler is not CLIP's: random, off its defaults, copied to both
        ref.ln_pool.weight.normal_(1.0, 0.2)
        ref.ln_pool.bias.normal_(0.0, 0.1)
    head = create_head("tighttransf", embed_dim=D, init="clip", heads=info["heads"]).eval()
    head.init_from(weights, info)
    head.pool_norm.load_state_dict(ref.ln_pool.state_dict())
    head.pool_dense.load_state_dict(ref.dense.state_dict())
    head.score_head.load_state_dict(ref.similarity_dense.state_dict())
    return head, ref


def _captions(seed: int, n: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(n, 5, D, generator=g) * 0.5
    return {"tokens": tokens, "token_mask": torch.ones(n, 5, dtype=torch.bool), "eot": torch.full((n,), 4)}


@pytest.mark.parametrize("ragged", [False, True])
def test_tighttransf_clip_init_equals_clip4clip_tighttransf(clip_model, ragged):
    """init=clip: CLIP4Clip's start, forward pass equal to its cross model on the same weights. On
    ragged masks the reference applies each pair's own mask (repeat_interleave, as vtrbench; see
    the next test for CLIP4Clip's tiling), on full masks it is CLIP4Clip's code as written."""
    head, ref = _tight_pair(clip_model, "repeat_interleave" if ragged else "repeat")
    video = _inputs(3)
    if not ragged:
        video["frame_mask"][:] = True
    text = _captions(4, 5)
    with torch.no_grad():
        ours = head.score(text, video)
        theirs = ref(text["tokens"][:, 4], video["frames"], video["frame_mask"])
    assert (ours - theirs).abs().max().item() <= MAX_ABS_DIFF
    assert theirs.std().item() > 100 * MAX_ABS_DIFF  # the scores are not all alike


def test_tighttransf_comparison_can_fail(clip_model):
    """Sensitivity of the check above: a random start and CLIP4Clip's head-major mask tiling on a
    ragged batch both land far outside the tolerance."""
    head, ref = _tight_pair(clip_model, "repeat_interleave")
    video, text = _inputs(3), _captions(4, 5)
    with torch.no_grad():
        theirs = ref(text["tokens"][:, 4], video["frames"], video["frame_mask"])
        torch.manual_seed(0)
        random_head = create_head("tighttransf", embed_dim=D, init="random", heads=2).eval()
        random_head.pool_norm.load_state_dict(head.pool_norm.state_dict())
        random_head.pool_dense.load_state_dict(head.pool_dense.state_dict())
        random_head.score_head.load_state_dict(head.score_head.state_dict())
        assert (random_head.score(text, video) - theirs).abs().max() > 100 * MAX_ABS_DIFF
        tiled = RefTightTransf(D, layers=4, heads=2, mask_layout="repeat").eval()
        tiled.load_state_dict(ref.state_dict())
        assert (tiled(text["tokens"][:, 4], video["frames"], video["frame_mask"]) - theirs).abs().max() > 1e-3


def test_tighttransf_init_clip_copies_the_clip_tensors_and_keeps_frame_rows_past_the_context(clip_model):
    weights, info = _export(clip_model)
    sd = clip_model.state_dict()
    for text in ("eot", "tokens"):
        torch.manual_seed(0)
        head = create_head("tighttransf", embed_dim=D, init="clip", heads=2, text=text)
        before = head.position.detach().clone()
        head.init_from(weights, info)
        torch.testing.assert_close(head.position[:77], sd["positional_embedding"], rtol=0, atol=0)
        torch.testing.assert_close(head.position[77:], before[77:], rtol=0, atol=0)  # text=tokens' frame rows
        for i, block in enumerate(head.transformer.blocks):
            p = f"transformer.resblocks.{i}."
            torch.testing.assert_close(block.attn.qkv.bias, sd[p + "attn.in_proj_bias"], rtol=0, atol=0)
            torch.testing.assert_close(block.mlp[0].weight, sd[p + "mlp.c_fc.weight"], rtol=0, atol=0)
    with pytest.raises(VtrbenchError, match="tighttransf init=clip: layers=5 but the cache holds"):
        create_head("tighttransf", embed_dim=D, init="clip", layers=5, heads=2).init_from(weights, info)
    head = create_head("tighttransf", embed_dim=D, init="clip", heads=2)
    with pytest.raises(VtrbenchError, match="before init_from"):
        head.train().score(_captions(0, 2), _inputs(0, batch=2))


def test_tighttransf_pooler_layernorm_eps_is_clip4clips():
    """CrossPooler's LayerNorm is CLIP4Clip's TF-style one with eps 1e-12; torch's default 1e-5
    visibly shrinks a hidden state of small spread (per-dimension std 1e-3 here)."""
    head = create_head("tighttransf", embed_dim=D)
    assert head.pool_norm.eps == 1e-12
    x = torch.randn(4, D) * 1e-3
    ref = RefLayerNorm(D)
    with torch.no_grad():
        torch.testing.assert_close(head.pool_norm(x), ref(x), rtol=1e-4, atol=1e-4)
        assert (nn.LayerNorm(D)(x) - ref(x)).abs().max() > 0.1


def test_tighttransf_train_defaults_to_clip_init_where_the_cache_has_the_layers(
    clipinit_cache, run_cli, tmp_path
):
    r = run_cli(
        "train", "--cache", clipinit_cache, "--head", "tighttransf", "--loss", "infonce",
        "--epochs", "1", "--batch-size", "4", "--results", tmp_path, "--quiet",
    )  # fmt: skip
    assert r.code == 0, r.text
    (path,) = tmp_path.rglob("*.json")
    result = json.loads(path.read_text())
    assert result["config"]["head_options"]["init"] == "clip" and result["label"] == "tighttransf[init=clip]"


def _drl_wti(text_unit, text_w, video_unit, video_w):
    """DRL wti_interaction for one caption and one video (all positions valid), as a plain loop."""
    n_t, n_v = len(text_unit), len(video_unit)
    sim = [[float(text_unit[i] @ video_unit[j]) for j in range(n_v)] for i in range(n_t)]
    t2v = sum(float(text_w[i]) * max(row) for i, row in enumerate(sim))
    v2t = sum(float(video_w[j]) * max(sim[i][j] for i in range(len(sim))) for j in range(len(video_unit)))
    return 0.5 * (t2v + v2t)


def test_wti_agg_seqtransf_is_drls_reported_configuration(clip_model):
    """wti agg=seqtransf init=clip: DRL's --agg_module seqTransf (CLIP's positions and text layers
    0-3, outer residual) before the weighted token-wise interaction; the frames the weight MLP and
    the cosines read are the aggregated ones."""
    weights, info = _export(clip_model)
    head = create_head("wti", embed_dim=D, agg="seqtransf", init="clip", heads=2, adapter=False).eval()
    head.init_from(weights, info)
    ref = RefSeqTransf(D, layers=4, heads=2).eval()  # DRL's agg: repeat_interleave mask layout
    ref.load_from_clip(clip_model.state_dict())
    video = _inputs(6)
    with torch.no_grad():
        agg = ref.aggregate(video["frames"], video["frame_mask"])
        state = head.video_state(video)
        m = video["frame_mask"]
        torch.testing.assert_close(state["unit"][m], F.normalize(agg, dim=-1)[m], rtol=1e-4, atol=1e-4)
        logits = head.video_weight(agg).squeeze(-1).masked_fill(~m, float("-inf")).softmax(-1)
        torch.testing.assert_close(state["weight"][m], logits[m], rtol=1e-4, atol=1e-4)
        # full masks: the score is DRL's formula on the aggregated frames
        video["frame_mask"][:] = True
        text = _captions(7, 3)
        agg = ref.aggregate(video["frames"], video["frame_mask"])
        got = head.score(text, video)
        t_unit = F.normalize(text["tokens"], dim=-1)
        t_w = head.text_weight(text["tokens"]).squeeze(-1).softmax(-1)
        v_unit = F.normalize(agg, dim=-1)
        v_w = head.video_weight(agg).squeeze(-1).softmax(-1)
        want = torch.tensor(
            [[_drl_wti(t_unit[i], t_w[i], v_unit[j], v_w[j]) for j in range(agg.shape[0])] for i in range(3)]
        )
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        plain = create_head("wti", embed_dim=D, adapter=False).eval()  # DRL's agg_module None
        plain.load_state_dict(head.state_dict(), strict=False)
        assert (plain.score(text, video) - got).abs().max() > 100 * MAX_ABS_DIFF


def test_wti_agg_options_resolve_like_seqtransf(clipinit_cache, run_cli, tmp_path):
    from vtrbench.heads.wti import WTIHead

    info = {"stored": False, "reason": "no layers here"}
    assert WTIHead.resolve_options({}, info, D) == ({}, None)  # agg=none: nothing to start
    opts, note = WTIHead.resolve_options({"agg": "seqtransf"}, info, D)
    assert opts["init"] == "random" and "no layers here" in note
    r = run_cli(
        "train", "--cache", clipinit_cache, "--head", "wti", "--head-option", "agg=seqtransf",
        "--loss", "infonce", "--epochs", "1", "--batch-size", "8", "--results", tmp_path, "--quiet",
    )  # fmt: skip
    assert r.code == 0, r.text
    (path,) = tmp_path.rglob("*.json")
    assert json.loads(path.read_text())["label"] == "wti[agg=seqtransf,layers=4,init=clip]"


def test_mask_tiling_measurement_compares_the_right_things(clip_model):
    """benchmarks/clip4clip_mask_tiling.py (the figure in docs/heads.md): its reference with each
    video's own mask is vtrbench's seqtransf; CLIP4Clip's head-major tiling moves ragged videos only."""
    from tests.top.test_benchmarks import load

    bench = load("clip4clip_mask_tiling")
    weights, info = _export(clip_model)
    frames, mask = bench.ragged_batch(8, 6, 2, D, seed=1)
    ragged = bench.measure(weights, info, frames, mask)
    assert ragged["vtrbench_vs_fixed_max_abs"] <= MAX_ABS_DIFF
    assert ragged["videos_changed_1e-6"] > 0 and ragged["cosine_distance_max"] > 1e-4
    full = bench.measure(weights, info, frames, torch.ones_like(mask))
    assert full["max_abs_diff"] <= MAX_ABS_DIFF and full["videos_changed_1e-6"] == 0
