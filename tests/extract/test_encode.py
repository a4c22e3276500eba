"""The frozen CLIP encoder: features equal open_clip's, tokenisation, noun/verb masks, checkpoints.

Reference values come from open_clip itself (``encode_text``, ``encode_image``,
``tokenizer.encode``) or from the model's layers applied by hand, never from the
code under test. Tolerances: the per-token text path runs the transformer on the
batch's longest caption instead of 77 positions, which changes matrix shapes and
so float32 rounding; features are compared with ``atol = rtol = 1e-5`` (measured
differences are below 1e-6 on vtrbench-tiny). Everything else is exact.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from vtrbench.errors import VtrbenchError  # noqa: E402
from vtrbench.extract.encode import (  # noqa: E402
    encode_frames,
    encode_tokens,
    is_torchscript,
    load_clip,
    tokenize,
)
from vtrbench.extract.tagging import bpe_with_spans, make_tagger  # noqa: E402

ATOL = RTOL = 1e-5
TINY = "vtrbench-tiny"
CAPTIONS = [
    "a man is running with a dog",
    "A skateboarder is skateboarding down a ramp!",
    "two kids play soccer on the beach while their parents watch from a distance",
    "cat",
]


def _quiet_load(model: str, pretrained: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_clip(model, pretrained, device="cpu")


def _tiny_open_clip(quick_gelu: bool = True, seed: int = 1) -> Any:
    """A vtrbench-tiny CLIP built by open_clip directly, weights rounded to float16 values.

    Rounding makes the weights survive OpenAI's loader, which casts to float16 and back.
    """
    from open_clip.model import CLIP

    cfg = json.loads((Path(__file__).parents[2] / "vtrbench" / "model_configs" / f"{TINY}.json").read_text())
    torch.manual_seed(seed)
    model = CLIP(
        cfg["embed_dim"],
        vision_cfg=cfg["vision_cfg"],
        text_cfg=cfg["text_cfg"],
        quick_gelu=quick_gelu,
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model.eval().requires_grad_(False)  # frozen like load_clip: same attention kernels


def _features(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    torch.manual_seed(123)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokenizer(CAPTIONS))


def _encode_captions(clip: Any, captions: list[str]) -> tuple[Any, Any]:
    """Tokenised captions (max_words 32, no masks) and their (N, L', D) token features."""
    tok = tokenize(clip, captions, 32, [None] * len(captions))
    eot = torch.from_numpy(tok.eot.astype(np.int64))
    return tok, encode_tokens(clip, torch.from_numpy(tok.token_ids), eot)


# ----------------------------------------------------------------- features


def test_eot_token_feature_equals_open_clip_encode_text(tiny_clip: Any) -> None:
    tok, feats = _encode_captions(tiny_clip, CAPTIONS)
    with torch.no_grad():
        reference = tiny_clip.model.encode_text(tiny_clip.tokenizer(CAPTIONS))
    at_eot = feats[torch.arange(len(CAPTIONS)), torch.from_numpy(tok.eot.astype(np.int64))]
    assert at_eot.shape == (len(CAPTIONS), tiny_clip.embed_dim)
    torch.testing.assert_close(at_eot, reference, atol=ATOL, rtol=RTOL)


def test_every_token_feature_equals_hand_applied_layers(tiny_clip: Any) -> None:
    """ln_final(transformer(tok + pos, causal mask)) @ text_projection, run on all 77 positions."""
    tok, feats = _encode_captions(tiny_clip, CAPTIONS)
    m = tiny_clip.model
    ids = torch.zeros(len(CAPTIONS), 77, dtype=torch.long)
    ids[:, :32] = torch.from_numpy(tok.token_ids).long()
    causal = torch.full((77, 77), float("-inf")).triu(1)
    with torch.no_grad():
        x = m.token_embedding(ids) + m.positional_embedding
        x = m.ln_final(m.transformer(x, attn_mask=causal)) @ m.text_projection
    for i, e in enumerate(tok.eot):
        torch.testing.assert_close(feats[i, : e + 1], x[i, : e + 1], atol=ATOL, rtol=RTOL)


def test_token_features_are_zero_after_eot(tiny_clip: Any) -> None:
    tok, feats = _encode_captions(tiny_clip, CAPTIONS)
    assert feats.shape[1] == int(tok.eot.max()) + 1  # run on the longest caption only
    for i, e in enumerate(tok.eot):
        assert torch.count_nonzero(feats[i, e + 1 :]) == 0
        assert torch.all(feats[i, : e + 1].abs().sum(-1) > 0)


def test_frame_features_equal_open_clip_encode_image(tiny_clip: Any, synth_dir: Path) -> None:
    from vtrbench.extract.decode import decode_video
    from vtrbench.extract.preprocess import preprocess_frames

    video = decode_video(synth_dir / "videos" / "syn00000.mp4", rate=1, max_frames=12)
    pixels = preprocess_frames(video.frames, tiny_clip.image_size)
    emb, patches = encode_frames(tiny_clip, pixels)
    assert patches is None
    with torch.no_grad():
        reference = tiny_clip.model.encode_image(pixels)
    assert emb.shape == (12, tiny_clip.embed_dim)
    torch.testing.assert_close(emb, reference, atol=0, rtol=0)


def test_patch_tokens_equal_hand_applied_vision_layers(tiny_clip: Any) -> None:
    torch.manual_seed(5)
    pixels = torch.randn(4, 3, 64, 64)
    emb, patches = encode_frames(tiny_clip, pixels, patch_tokens=True)
    v = tiny_clip.model.visual
    with torch.no_grad():
        x = v.conv1(pixels).flatten(2).transpose(1, 2)  # (N, P, width)
        cls = v.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding
        x = v.ln_post(v.transformer(v.ln_pre(x))) @ v.proj
    grid = (64 // 16) ** 2
    assert patches is not None and patches.shape == (4, grid, tiny_clip.embed_dim)
    torch.testing.assert_close(emb, x[:, 0], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(patches, x[:, 1:], atol=ATOL, rtol=RTOL)
    assert v.output_tokens is False  # restored for the next plain call


# ----------------------------------------------------------------- tokenisation


@pytest.mark.parametrize(
    "text",
    [
        *CAPTIONS,
        "  spaces   and\ttabs  ",
        "it's 3:15pm, isn't it?",
        "naïve café — déjà vu",
        "Tom &amp; Jerry",
        "emoji 🐶 dog",
        "UPPER lower MiXeD",
        "",
    ],
)
def test_bpe_with_spans_ids_equal_tokenizer_encode(tiny_clip: Any, text: str) -> None:
    tokenizer = tiny_clip.tokenizer
    cleaned, ids, spans = bpe_with_spans(tokenizer, text)
    assert ids == tokenizer.encode(text)
    assert len(spans) == len(ids)
    for start, end in spans:
        assert 0 <= start < end <= len(cleaned)


def test_truncation_keeps_sot_bpe_eot_within_max_words(tiny_clip: Any) -> None:
    tokenizer = tiny_clip.tokenizer
    sot, eot_id = tokenizer.sot_token_id, tokenizer.eot_token_id
    long_caption = " ".join(["word"] * 40)
    bpe = tokenizer.encode(long_caption)
    assert len(bpe) == 40
    for max_words in (8, 32, 41, 42, 64):
        tok = tokenize(tiny_clip, [long_caption, "cat"], max_words, [None, None])
        kept = min(len(bpe), max_words - 2)
        row = tok.token_ids[0]
        assert tok.token_ids.shape == (2, max_words)
        assert list(row[: kept + 2]) == [sot, *bpe[:kept], eot_id]
        assert tok.eot[0] == kept + 1 <= max_words - 1
        assert not row[kept + 2 :].any()
        assert list(tok.token_mask[0]) == [j <= kept + 1 for j in range(max_words)]
        assert list(tok.token_ids[1, :3]) == [sot, *tokenizer.encode("cat"), eot_id]
        assert tok.eot[1] == 2


def test_noun_verb_masks_from_pattern_tagger(tiny_clip: Any) -> None:
    tagger = make_tagger("pattern")
    caption = "a man is running with a dog"
    tok = tokenize(tiny_clip, [caption], 32, [tagger(caption)])
    words = caption.split()
    pieces = [tiny_clip.tokenizer.encode(w) for w in words]
    assert all(len(p) == 1 for p in pieces)
    position = {w: j + 1 for j, w in enumerate(words)}  # +1 for SOT; unique words here except "a"
    nouns = {j for j in range(32) if tok.noun_mask[0, j]}
    verbs = {j for j in range(32) if tok.verb_mask[0, j]}
    assert nouns == {position["man"], position["dog"]}
    assert verbs == {position["running"]}
    assert position["is"] not in verbs


def test_multi_piece_words_mark_every_piece(tiny_clip: Any) -> None:
    tokenizer = tiny_clip.tokenizer
    caption = "a skateboarder juggles pineapples"
    roles = [("a", ""), ("skateboarder", "noun"), ("juggles", "verb"), ("pineapples", "noun")]
    tok = tokenize(tiny_clip, [caption], 32, [roles])
    expected_noun, expected_verb = [False], [False]  # SOT
    for word, role in roles:
        n = len(tokenizer.encode(word))
        expected_noun += [role == "noun"] * n
        expected_verb += [role == "verb"] * n
    assert sum(len(tokenizer.encode(w)) > 1 for w, _ in roles) == 3  # really multi-piece
    n = len(expected_noun)
    assert list(tok.noun_mask[0, :n]) == expected_noun and not tok.noun_mask[0, n:].any()
    assert list(tok.verb_mask[0, :n]) == expected_verb and not tok.verb_mask[0, n:].any()


def test_tagger_marks_multi_piece_noun(tiny_clip: Any) -> None:
    tagger = make_tagger("pattern")
    caption = "a skateboarder is skateboarding down a ramp"
    tok = tokenize(tiny_clip, [caption], 32, [tagger(caption)])
    pieces = tiny_clip.tokenizer.encode("skateboarder")
    assert len(pieces) == 2
    assert list(tok.token_ids[0, 2:4]) == pieces  # SOT, "a", then the two pieces
    assert tok.noun_mask[0, 2] and tok.noun_mask[0, 3]
    assert not tok.noun_mask[0, 1] and not tok.verb_mask[0, 1]


def test_unknown_tagger_is_a_clear_error() -> None:
    with pytest.raises(VtrbenchError, match="did you mean 'pattern'"):
        make_tagger("patern")
    assert make_tagger("none") is None


# ----------------------------------------------------------------- loading


def test_random_weights_flagged(tiny_clip: Any) -> None:
    assert tiny_clip.random_weights is True
    assert tiny_clip.quick_gelu is True  # the tiny config asks for it
    assert tiny_clip.image_size == 64 and tiny_clip.embed_dim == 64


def test_random_weights_do_not_depend_on_global_rng() -> None:
    torch.manual_seed(1)
    a = _quiet_load(TINY, "none").model.state_dict()
    torch.manual_seed(2)
    b = _quiet_load(TINY, "none").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_open_clip_state_dict_checkpoint_gives_source_features(tmp_path: Path) -> None:
    source = _tiny_open_clip(quick_gelu=True)
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    assert not is_torchscript(path)  # a torch.save zip archive, but no TorchScript code
    clip = _quiet_load(TINY, str(path))
    assert not clip.random_weights and str(path) in clip.weights_source
    tokenizer = open_clip.get_tokenizer(TINY)
    want_img, want_txt = _features(source, tokenizer)
    got_img, got_txt = _features(clip.model, tokenizer)
    torch.testing.assert_close(got_img, want_img, atol=0, rtol=0)
    torch.testing.assert_close(got_txt, want_txt, atol=0, rtol=0)


def test_checkpoint_of_another_shape_is_a_clear_error(tmp_path: Path) -> None:
    sd = _tiny_open_clip().state_dict()
    sd["text_projection"] = torch.zeros(128, 32)
    path = tmp_path / "wrong.pt"
    torch.save(sd, path)
    with pytest.raises(VtrbenchError, match=r"does not fit model 'vtrbench-tiny'"):
        _quiet_load(TINY, str(path))


def _openai_style_torchscript(model: Any, path: Path) -> Path:
    """Trace ``model`` into a TorchScript archive whose state dict has exactly OpenAI's key names.

    open_clip's CLIP uses OpenAI's parameter names, but registers the causal mask as a
    (non-persistent) buffer that a traced module would export as ``attn_mask``; OpenAI's
    model keeps it as a plain attribute, so it is turned into one before tracing.
    """
    mask = model.attn_mask
    del model._buffers["attn_mask"]
    model.attn_mask = mask
    example = (torch.zeros(1, 3, 64, 64), torch.zeros(1, 77, dtype=torch.long))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python values
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))
    return path


@pytest.fixture(scope="module")
def openai_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    source = _tiny_open_clip(quick_gelu=True, seed=7)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    path = _openai_style_torchscript(source, tmp_path_factory.mktemp("openai") / "tiny-openai.pt")
    return path, state


def test_openai_torchscript_restores_quickgelu_and_source_features(
    openai_archive: tuple[Path, dict[str, Any]],
) -> None:
    from open_clip.transformer import QuickGELU

    path, state = openai_archive
    assert is_torchscript(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated; OpenAI's files are TorchScript
        keys = set(torch.jit.load(str(path)).state_dict())
    assert keys == set(state) and "attn_mask" not in keys
    tokenizer = open_clip.get_tokenizer(TINY)
    source = _tiny_open_clip(quick_gelu=True, seed=0)
    source.load_state_dict(state)
    want_img, want_txt = _features(source, tokenizer)

    clip = _quiet_load(TINY, str(path))
    assert clip.quick_gelu is True and "TorchScript" in clip.weights_source
    acts = [m for m in clip.model.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))]
    assert acts and all(isinstance(m, QuickGELU) for m in acts)
    got_img, got_txt = _features(clip.model, tokenizer)
    torch.testing.assert_close(got_img, want_img, atol=0, rtol=0)
    torch.testing.assert_close(got_txt, want_txt, atol=0, rtol=0)

    # The same weights in a plain-GELU model load without error and give other features.
    plain = _tiny_open_clip(quick_gelu=False, seed=0)
    plain.load_state_dict(state)
    gelu_img, gelu_txt = _features(plain, tokenizer)
    assert (gelu_img - want_img).abs().max() > 1e-3
    assert (gelu_txt - want_txt).abs().max() > 1e-3


def test_torchscript_of_another_width_is_a_clear_error(openai_archive: tuple[Path, dict[str, Any]]) -> None:
    path, _ = openai_archive
    with pytest.raises(VtrbenchError, match="embed_dim 64"):
        _quiet_load("ViT-B-32-quickgelu", str(path))


def test_torchscript_that_is_not_clip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "linear.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(3, 4)), str(path))
    assert is_torchscript(path)
    with pytest.raises(VtrbenchError, match="linear.pt"):
        _quiet_load(TINY, str(path))


def test_unknown_pretrained_tag_suggests_the_close_one() -> None:
    with pytest.raises(VtrbenchError, match=r"unknown pretrained tag 'opnai'.*did you mean 'openai'"):
        load_clip("ViT-B-32", "opnai")


def test_missing_checkpoint_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "clip.pt"
    with pytest.raises(VtrbenchError, match=r"checkpoint file not found: .*nowhere/clip\.pt"):
        load_clip(TINY, str(missing))


def test_unknown_model_suggests_the_close_one() -> None:
    with pytest.raises(VtrbenchError, match=r"unknown model 'vtrbench-tinny'.*did you mean 'vtrbench-tiny'"):
        load_clip("vtrbench-tinny", "none")
