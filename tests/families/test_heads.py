"""Heads: shapes, gradients, masking, and hand-computed references (small sizes, CPU, seconds)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head, create_loss
from vtrbench.heads.base import is_pairwise, list_heads
from vtrbench.losses.base import list_losses

B, T, L, D, P = 6, 5, 8, 32, 3

# Every registered factorised head with its defaults, plus the option variants that change the
# computation (pairwise heads have no embeddings: tests/eval/test_pairwise.py runs the same checks on scores).
VARIANTS = [(name, {}) for name in list_heads() if not is_pairwise(name)] + [
    ("meanp", {"adapter": False}),
    ("seqtransf", {"layers": 1, "heads": 4}),
    ("camoe", {"streams": "learned"}),
    ("camoe", {"streams": "eot", "gate": "uniform"}),
    ("camoe", {"aux_weight": 0.5}),
    ("camoe", {"patches": True}),
    ("camoe", {"experts": "action,entity", "adapter": False}),
]
VARIANT_IDS = [f"{n}-{','.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for n, o in VARIANTS]


def make_batch(seed: int = 0, patches: bool = False) -> tuple[dict, dict]:
    """Random text/video batches with ragged prefix masks; some captions have no nouns or verbs."""
    g = torch.Generator().manual_seed(seed)
    n_frames = torch.tensor([T, 1, 3, T, 2, 4])
    n_tokens = torch.tensor([L, 3, 5, 2, L, 6])
    frame_mask = torch.arange(T)[None] < n_frames[:, None]
    token_mask = torch.arange(L)[None] < n_tokens[:, None]
    noun_mask = (torch.rand(B, L, generator=g) < 0.4) & token_mask
    verb_mask = (torch.rand(B, L, generator=g) < 0.4) & token_mask
    noun_mask[1] = False
    verb_mask[2] = False
    verb_mask[0, 1] = True
    noun_mask[0, 2] = True
    video = {"frames": torch.randn(B, T, D, generator=g) * 3, "frame_mask": frame_mask}
    if patches:
        video["patches"] = torch.randn(B, T, P, D, generator=g) * 3
    text = {
        "tokens": torch.randn(B, L, D, generator=g) * 3,
        "token_mask": token_mask,
        "eot": (n_tokens - 1).to(torch.int16),  # the cache stores eot as int16
        "noun_mask": noun_mask,
        "verb_mask": verb_mask,
    }
    return text, video


def build(name: str, options: dict, seed: int = 0, perturb: bool = False):
    torch.manual_seed(seed)
    head = create_head(name, embed_dim=D, **options)
    if perturb:  # move every parameter off its (often identity) initialisation
        with torch.no_grad():
            for p in head.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return head


def uses_patches(options: dict) -> bool:
    return bool(options.get("patches"))


def expert_count(head) -> int:
    return len(getattr(head, "experts", ())) or 1


@pytest.mark.parametrize("loss_name", list_losses())
@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
def test_every_head_and_loss_give_finite_logits_and_loss(name, options, loss_name):
    head = build(name, options)
    text, video = make_batch(patches=uses_patches(options))
    logits, aux = head.training_logits(text, video)
    assert logits.shape == (B, B)
    assert torch.isfinite(logits).all()
    expected_aux = expert_count(head) if options.get("aux_weight", 0) > 0 else 0
    assert len(aux) == expected_aux
    assert all(a.shape == (B, B) and torch.isfinite(a).all() for a in aux)
    loss = create_loss(loss_name)(logits)
    assert loss.dim() == 0 and torch.isfinite(loss)
    # training_logits must agree with the dot product that evaluation uses.
    sim = head.encode_text(text) @ head.encode_video(video).t()
    torch.testing.assert_close(logits, head.logit_scale() * sim, rtol=1e-5, atol=1e-4)
    assert sim.abs().max() <= 1 + 1e-5


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
def test_gradients_reach_every_trainable_parameter(name, options):
    head = build(name, options)
    if not head.trainable:
        assert [n for n, _ in head.named_parameters()] == ["log_logit_scale"]
        return
    text, video = make_batch(patches=uses_patches(options))
    logits, aux = head.training_logits(text, video)
    loss_fn = create_loss("infonce")
    loss = loss_fn(logits)
    if aux:
        loss = loss + head.aux_weight * torch.stack([loss_fn(a) for a in aux]).mean()
    loss.backward()
    for pname, p in head.named_parameters():
        assert p.grad is not None, f"{pname} gets no gradient"
        assert p.grad.abs().sum() > 0, f"{pname} gets an all-zero gradient"


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
def test_padding_content_never_reaches_the_embeddings(name, options):
    head = build(name, options, perturb=True)
    text, video = make_batch(seed=1, patches=uses_patches(options))
    g = torch.Generator().manual_seed(7)

    def garbage(*shape):
        x = torch.randn(*shape, generator=g) * 1e4
        x.view(-1)[0] = float("nan")
        return x

    # Fill the existing padding with garbage and append more padded frames/tokens.
    padded_video = {"frame_mask": torch.cat([video["frame_mask"], torch.zeros(B, 3, dtype=torch.bool)], 1)}
    frames = torch.where(video["frame_mask"][..., None], video["frames"], garbage(B, T, D))
    padded_video["frames"] = torch.cat([frames, garbage(B, 3, D)], 1)
    if "patches" in video:
        patches = torch.where(video["frame_mask"][..., None, None], video["patches"], garbage(B, T, P, D))
        padded_video["patches"] = torch.cat([patches, garbage(B, 3, P, D)], 1)
    pad_tokens = torch.zeros(B, 4, dtype=torch.bool)
    padded_text = {
        "tokens": torch.cat(
            [torch.where(text["token_mask"][..., None], text["tokens"], garbage(B, L, D)), garbage(B, 4, D)],
            1,
        ),
        "token_mask": torch.cat([text["token_mask"], pad_tokens], 1),
        "eot": text["eot"],
        # A tagger flag on a padded position must not matter either.
        "noun_mask": torch.cat([text["noun_mask"] | ~text["token_mask"], ~pad_tokens], 1),
        "verb_mask": torch.cat([text["verb_mask"] | ~text["token_mask"], ~pad_tokens], 1),
    }
    with torch.no_grad():
        torch.testing.assert_close(
            head.encode_video(padded_video), head.encode_video(video), rtol=0, atol=1e-5
        )
        torch.testing.assert_close(head.encode_text(padded_text), head.encode_text(text), rtol=0, atol=1e-5)


def test_zeroshot_equals_hand_computation():
    head = build("zeroshot", {})
    text, video = make_batch()
    expected_v = []
    for b in range(B):
        valid = [video["frames"][b, t] for t in range(T) if video["frame_mask"][b, t]]
        mean = sum(f / f.norm() for f in valid) / len(valid)
        expected_v.append(mean / mean.norm())
    expected_t = [text["tokens"][b, int(text["eot"][b])] for b in range(B)]
    expected_t = [t / t.norm() for t in expected_t]
    with torch.no_grad():
        torch.testing.assert_close(head.encode_video(video), torch.stack(expected_v))
        torch.testing.assert_close(head.encode_text(text), torch.stack(expected_t))
        logits, aux = head.training_logits(text, video)
    assert aux == []
    expected_logits = 100.0 * torch.stack(expected_t) @ torch.stack(expected_v).t()
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-4)
    assert head.trainable is False


def test_trained_heads_start_at_zeroshot_text_side():
    """Identity-initialised adapters: before training the text side is exactly frozen CLIP."""
    text, _ = make_batch()
    reference = build("zeroshot", {}).encode_text(text)
    for name in ("meanp", "seqtransf"):
        torch.testing.assert_close(build(name, {}).encode_text(text), reference)


def test_camoe_scene_only_uniform_is_the_masked_mean_model():
    text, video = make_batch(seed=2)
    options = {"experts": ["scene"], "gate": "uniform"}
    with torch.no_grad():
        # At initialisation the adapters are the identity: exactly zeroshot mean pooling.
        fresh = build("camoe", options)
        zeroshot = build("zeroshot", {})
        torch.testing.assert_close(fresh.encode_video(video), zeroshot.encode_video(video))
        torch.testing.assert_close(fresh.encode_text(text), zeroshot.encode_text(text))
        # Trained (perturbed) weights: identical to meanp carrying the same two adapters.
        camoe = build("camoe", options, perturb=True)
        meanp = build("meanp", {})
        meanp.text_adapter.load_state_dict(camoe.text_adapters["scene"].state_dict())
        meanp.video_adapter.load_state_dict(camoe.video_experts["scene"].adapter.state_dict())
        meanp.log_logit_scale.copy_(camoe.log_logit_scale)
        torch.testing.assert_close(camoe.encode_video(video), meanp.encode_video(video))
        torch.testing.assert_close(camoe.encode_text(text), meanp.encode_text(text))
        torch.testing.assert_close(
            camoe.training_logits(text, video)[0], meanp.training_logits(text, video)[0]
        )
        # And by hand: unit(W x + b + x) for x the unit masked mean of unit frames.
        lin = camoe.video_experts["scene"].adapter.linear
        for b in range(B):
            valid = [video["frames"][b, t] for t in range(T) if video["frame_mask"][b, t]]
            x = sum(f / f.norm() for f in valid) / len(valid)
            x = x / x.norm()
            y = x + lin.weight @ x + lin.bias
            torch.testing.assert_close(camoe.encode_video(video)[b], y / y.norm())


@pytest.mark.parametrize("streams", ["pos", "learned", "eot"])
def test_camoe_score_is_gated_sum_of_expert_cosines(streams):
    head = build("camoe", {"streams": streams, "aux_weight": 1.0}, perturb=True)
    text, video = make_batch(seed=3)
    with torch.no_grad():
        t_parts, gates = head.text_parts(text)
        v_parts = head.video_parts(video)
        k_count = len(head.experts)
        expected = torch.zeros(B, B)
        for i in range(B):
            for j in range(B):
                expected[i, j] = sum(
                    gates[i, k] * F.cosine_similarity(t_parts[i, k], v_parts[j, k], dim=0)
                    for k in range(k_count)
                )
        sim = head.encode_text(text) @ head.encode_video(video).t()
        torch.testing.assert_close(sim, expected, rtol=1e-5, atol=1e-5)
        logits, aux = head.training_logits(text, video)
        torch.testing.assert_close(logits, head.logit_scale() * expected, rtol=1e-5, atol=1e-4)
        for k in range(k_count):
            cos_k = F.cosine_similarity(t_parts[:, None, k], v_parts[None, :, k], dim=-1)
            torch.testing.assert_close(aux[k], head.logit_scale() * cos_k, rtol=1e-5, atol=1e-4)
        # The gate is a distribution that depends on the text, and gate_weights reports it per expert.
        torch.testing.assert_close(gates.sum(1), torch.ones(B))
        assert (gates > 0).all() and gates.std(0).max() > 0
        weights = head.gate_weights(text)
        assert list(weights) == list(head.experts)
        torch.testing.assert_close(torch.stack([weights[e] for e in head.experts], 1), gates)


def test_camoe_uniform_gate_weights():
    head = build("camoe", {"gate": "uniform", "experts": ["fusion", "scene", "entity"]})
    text, _ = make_batch()
    weights = head.gate_weights(text)
    assert sorted(weights) == ["entity", "fusion", "scene"]
    for w in weights.values():
        torch.testing.assert_close(w, torch.full((B,), 1 / 3))


def test_camoe_pos_streams_are_masked_token_means_with_eot_fallback():
    head = build("camoe", {"gate": "uniform"})  # identity adapters at initialisation
    text, _ = make_batch(seed=4)
    with torch.no_grad():
        t_parts, _ = head.text_parts(text)
    index = {e: k for k, e in enumerate(head.experts)}
    for b in range(B):
        eot = text["tokens"][b, int(text["eot"][b])]
        for expert, key in (("action", "verb_mask"), ("entity", "noun_mask")):
            picked = [text["tokens"][b, i] for i in range(L) if text[key][b, i] and text["token_mask"][b, i]]
            raw = sum(picked) / len(picked) if picked else eot
            torch.testing.assert_close(t_parts[b, index[expert]], raw / raw.norm())
        for expert in ("fusion", "scene"):
            torch.testing.assert_close(t_parts[b, index[expert]], eot / eot.norm())


def test_camoe_pos_streams_need_masks_with_a_clear_error():
    head = build("camoe", {})
    assert head.requires == frozenset({"noun_mask", "verb_mask"})
    text, video = make_batch()
    bare = {k: v for k, v in text.items() if k not in ("noun_mask", "verb_mask")}
    with pytest.raises(VtrbenchError, match="needs noun/verb masks.*--streams learned\\|eot"):
        head.encode_text(bare)
    for streams in ("learned", "eot"):
        other = build("camoe", {"streams": streams})
        assert other.requires == frozenset()
        assert other.encode_text(bare).shape == (B, 4 * D)
    patched = build("camoe", {"patches": True})
    assert "patches" in patched.requires
    with pytest.raises(VtrbenchError, match="patch tokens"):
        patched.encode_video(video)


@pytest.mark.parametrize(
    ("name", "options", "hint"),
    [
        ("camoe", {"expert": ["scene"]}, "did you mean 'experts'"),
        ("camoe", {"experts": ["scenes"]}, "did you mean 'scene'"),
        ("camoe", {"streams": "learnt"}, "did you mean 'learned'"),
        ("camoe", {"gate": "singel"}, "did you mean 'single'"),
        ("camoe", {"aux_weigth": 0.1}, "did you mean 'aux_weight'"),
        ("seqtransf", {"layer": 2}, "did you mean 'layers'"),
        ("meanp", {"adaptor": False}, "did you mean 'adapter'"),
    ],
)
def test_unknown_option_names_and_values_suggest_the_right_one(name, options, hint):
    with pytest.raises(VtrbenchError, match=hint):
        create_head(name, embed_dim=D, **options)


def test_unknown_head_name_and_bad_option_values():
    with pytest.raises(VtrbenchError, match="did you mean 'camoe'"):
        create_head("camo", embed_dim=D)
    with pytest.raises(VtrbenchError, match="'zeroshot' takes no options; got adapter"):
        create_head("zeroshot", embed_dim=D, adapter=True)
    with pytest.raises(VtrbenchError, match="option experts must be a non-empty list"):
        create_head("camoe", embed_dim=D, experts=[])
    with pytest.raises(VtrbenchError, match="aux_weight"):
        create_head("camoe", embed_dim=D, aux_weight=-1)
    with pytest.raises(VtrbenchError, match="layers"):
        create_head("seqtransf", embed_dim=D, layers=0)


def test_attention_heads_must_divide_the_width():
    assert create_head("seqtransf", embed_dim=36).heads == 6  # default 8 falls back to a divisor
    assert create_head("camoe", embed_dim=D).heads == 8
    with pytest.raises(VtrbenchError, match="heads=8 does not divide the embedding width 36"):
        create_head("seqtransf", embed_dim=36, heads=8)


def test_more_frames_than_max_frames_is_a_clear_error():
    head = build("seqtransf", {"max_frames": 4})
    _, video = make_batch()
    with pytest.raises(VtrbenchError, match="max_frames=4"):
        head.encode_video(video)


def test_seqtransf_sees_frame_order_and_meanp_does_not():
    _, video = make_batch(seed=5)
    video["frame_mask"][:] = True
    shuffled = dict(video, frames=video["frames"][:, torch.tensor([4, 2, 0, 3, 1])])
    with torch.no_grad():
        seq = build("seqtransf", {}, perturb=True)
        assert (seq.encode_video(video) - seq.encode_video(shuffled)).abs().max() > 1e-3
        meanp = build("meanp", {}, perturb=True)
        torch.testing.assert_close(meanp.encode_video(video), meanp.encode_video(shuffled))


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
def test_describe_is_plain_data_and_label_is_short(name, options):
    head = build(name, options)
    description = head.describe()
    assert json.loads(json.dumps(description)) == description
    assert head.label().startswith(name) and len(head.label()) < 80
    for key, value in options.items():
        if key != "experts":
            assert description[key] == value


def test_camoe_label_lists_sorted_experts_and_non_defaults():
    # the temporal experts' depth and start are always stated (issue 8 item 3)
    assert build("camoe", {}).label() == "camoe[action,entity,fusion,scene;pos;single;layers=2;init=random]"
    head = build(
        "camoe", {"experts": "scene,action", "streams": "eot", "gate": "uniform", "aux_weight": 0.25}
    )
    assert head.label() == "camoe[action,scene;eot;uniform;aux=0.25;layers=2;init=random]"
    assert head.describe()["experts"] == ["action", "scene"]
    # without a temporal expert there is no depth or start to state
    assert build("camoe", {"experts": "entity,scene"}).label() == "camoe[entity,scene;pos;single]"
    assert build("meanp", {"adapter": False}).label() == "meanp[no-adapter]"
    assert build("seqtransf", {}).label() == "seqtransf[layers=4,init=random]"
    assert build("seqtransf", {"layers": 2, "adapter": False}).label() == (
        "seqtransf[layers=2,init=random,no-adapter]"
    )


def test_logit_scale_starts_at_100_and_is_clamped():
    head = build("meanp", {})
    assert math.isclose(head.logit_scale().item(), 100.0, rel_tol=1e-6)
    with torch.no_grad():
        head.log_logit_scale.add_(1.0)
    head.clamp_logit_scale()
    assert head.logit_scale().item() <= 100.0 + 1e-4
