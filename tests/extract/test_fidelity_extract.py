"""Extraction fidelity against the references (issue 8): preprocessing per model, CLIP4Clip's
time windows, file hashes.

References:
- open_clip 3.3 (installed): ``PreprocessCfg`` defaults overlaid with the pretrained tag's
  config (``merge_preprocess_dict(PreprocessCfg(), get_pretrained_cfg(model, tag))``), the
  size of the model's visual tower, and ``image_transform_v2`` (PIL + torchvision).
- CLIP4Clip's ``RawVideoExtractorCV2.video_to_tensor`` with ``start_time``/``end_time`` and
  its dataloaders' windows (DiDeMo 0..31; ActivityNet 0..ceil(duration)), re-implemented
  below as the OpenCV loop it is.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.videos import numbered_frames, read_frame_numbers, write_video
from vtrbench.errors import VtrbenchError

open_clip = pytest.importorskip("open_clip")
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict  # noqa: E402

from vtrbench.extract.preprocess import CLIP_STD, preprocess_frames  # noqa: E402
from vtrbench.extract.preprocess_cfg import resolve_preprocessing  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def shared_data() -> Path | None:
    """``../shared/data`` next to the repository, or the machine's /work/shared/data."""
    for candidate in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate
    return None


# --------------------------------------------------------------------------- preprocessing


def _open_clip_cfg(model: str, tag: str) -> dict[str, Any]:
    """open_clip's final preprocess cfg for (model, tag), as create_model_and_transforms builds it:
    defaults, overlaid with the tag's config, size from the visual tower (its config's image_size)."""
    cfg = merge_preprocess_dict(PreprocessCfg(), open_clip.get_pretrained_cfg(model, tag))
    size = open_clip.get_model_config(model)["vision_cfg"]["image_size"]
    cfg["size"] = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    return cfg


def _as_vtrbench(cfg: dict[str, Any]) -> dict[str, Any]:
    h, w = cfg["size"]
    assert h == w
    interp = "bicubic" if cfg["interpolation"] == "random" else cfg["interpolation"]
    return {
        "size": h,
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": interp,
        "resize_mode": cfg["resize_mode"],
        "fill_color": cfg["fill_color"],
    }


def test_every_pretrained_pair_resolves_as_open_clip() -> None:
    pairs = open_clip.list_pretrained()
    assert len(pairs) >= 190  # open-clip-torch 3.3 lists 196
    differ = []
    not_openai = 0
    for model, tag in pairs:
        want = _as_vtrbench(_open_clip_cfg(model, tag))
        got = resolve_preprocessing(model, tag)
        if got.values() != want:
            differ.append((model, tag, got.values(), want))
        assert got.source == f"pretrained tag {tag}" and not got.warning
        not_openai += (want["mean"], want["std"], want["resize_mode"], want["interpolation"]) != (
            [0.48145466, 0.4578275, 0.40821073],
            [0.26862954, 0.26130258, 0.27577711],
            "shortest",
            "bicubic",
        )
    assert not differ, differ[:3]
    # The point of resolving: a constant OpenAI transform was wrong for these (58 of 196 in 3.3).
    assert not_openai >= 50


# RN50/openai: OpenAI's transform; PE-Core-T-16-384/meta: mean = std = 0.5, bilinear, squash, 384 px.
@pytest.mark.parametrize("model, tag", [("RN50", "openai"), ("PE-Core-T-16-384", "meta")])
def test_factory_sets_the_same_preprocessing(model: str, tag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """open_clip's own factory, with the download stubbed out and no weights loaded."""
    import open_clip.factory as factory

    monkeypatch.setattr(factory, "download_pretrained", lambda cfg, cache_dir=None: "unused")
    with pytest.warns(UserWarning) if tag == "openai" else _nullcontext():
        m = open_clip.create_model(model, pretrained=tag, load_weights=False)
    final = dict(m.visual.preprocess_cfg)
    size = final["size"]
    final["size"] = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    assert resolve_preprocessing(model, tag).values() == _as_vtrbench(final)


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# Grey levels: the tolerance of tests/extract/test_preprocess.py (max 0.06 and mean 2e-4 in OpenAI's
# normalised units) converted to pixel levels, so that it means the same for any std.
MAX_LEVELS = 0.06 * min(CLIP_STD) * 255  # 4.0 levels
MEAN_LEVELS = 2e-4 * min(CLIP_STD) * 255  # 0.0133 levels


@pytest.fixture(scope="module")
def decoded_frames(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Decoded frames of the real MSR-VTT clips when present, else of a rendered 240x320 video."""
    from vtrbench.extract.decode import decode_video

    data = shared_data()
    paths = sorted((data / "videos").glob("*.mp4")) if data else []
    if not paths:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:240, 0:320]
        frames = np.stack(
            [
                np.clip(
                    128
                    + 90 * np.sin(xx[..., None] / (7 + i) + yy[..., None] / 11 + np.arange(3))
                    + rng.normal(0, 10, (240, 320, 3)),
                    0,
                    255,
                ).astype(np.uint8)
                for i in range(8)
            ]
        )
        paths = [write_video(tmp_path_factory.mktemp("pre") / "v.mp4", frames, 4)]
    return np.concatenate([decode_video(p, max_frames=6).frames for p in paths])


@pytest.mark.parametrize(
    "model, tag, expect",
    [
        ("ViT-B-32", "openai", ("shortest", "bicubic", 0.48145466)),
        ("ViT-L-14", "laion2b_s32b_b82k", ("shortest", "bicubic", 0.5)),
        ("ViT-B-16-SigLIP", "webli", ("squash", "bicubic", 0.5)),
        ("ViT-H-14", "dfn5b", ("squash", "bicubic", 0.48145466)),
        ("ViT-L-14-CLIPA", "datacomp1b", ("squash", "bilinear", 0.485)),
    ],
)
def test_frames_fed_to_the_model_equal_open_clip_transform(
    decoded_frames: np.ndarray, model: str, tag: str, expect: tuple[str, str, float]
) -> None:
    from PIL import Image

    ref_cfg = _open_clip_cfg(model, tag)
    assert (ref_cfg["resize_mode"], ref_cfg["interpolation"], ref_cfg["mean"][0]) == expect
    transform = image_transform_v2(PreprocessCfg(**ref_cfg), is_train=False)
    ref = torch.stack([transform(Image.fromarray(f)) for f in decoded_frames])
    pre = resolve_preprocessing(model, tag)
    ours = preprocess_frames(
        decoded_frames,
        pre.size,
        pre.mean,
        pre.std,
        interpolation=pre.interpolation,
        resize_mode=pre.resize_mode,
        fill_color=pre.fill_color,
    )
    assert ours.shape == ref.shape
    levels = (ours - ref).abs() * torch.tensor(pre.std).view(1, 3, 1, 1) * 255
    measured = f"{model}/{tag}: max {levels.max():.3f} levels, mean {levels.mean():.5f}"
    assert levels.max() <= MAX_LEVELS, measured
    assert levels.mean() <= MEAN_LEVELS, measured


@pytest.mark.parametrize("mode", ["longest", "squash"])
def test_other_resize_modes_on_portrait_frames(mode: str) -> None:
    from PIL import Image

    frames = np.random.default_rng(1).integers(0, 256, (3, 300, 170, 3), dtype=np.uint8)
    cfg = asdict(PreprocessCfg(size=64, resize_mode=mode, mean=(0.5,) * 3, std=(0.5,) * 3, fill_color=0))
    transform = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
    ref = torch.stack([transform(Image.fromarray(f)) for f in frames])
    ours = preprocess_frames(frames, 64, (0.5,) * 3, (0.5,) * 3, resize_mode=mode)
    levels = (ours - ref).abs() * 0.5 * 255
    assert levels.max() <= MAX_LEVELS and levels.mean() <= MEAN_LEVELS, f"{levels.max()}, {levels.mean()}"


def test_checkpoint_file_warns_and_like_or_values_choose(tmp_path: Path) -> None:
    ckpt = tmp_path / "my_siglip.pt"
    ckpt.write_bytes(b"not read")
    plain = resolve_preprocessing("ViT-B-16-SigLIP", str(ckpt))
    assert plain.warning and "--preprocess-like" in plain.warning
    assert (plain.mean, plain.resize_mode) == ((0.48145466, 0.4578275, 0.40821073), "shortest")
    like = resolve_preprocessing("ViT-B-16-SigLIP", str(ckpt), like="webli")
    assert like.values() == _as_vtrbench(_open_clip_cfg("ViT-B-16-SigLIP", "webli")) and not like.warning
    given = resolve_preprocessing("ViT-B-32", str(ckpt), mean=0.5, std=(0.5, 0.5, 0.5), resize_mode="squash")
    assert (given.mean, given.std, given.resize_mode, given.warning) == ((0.5,) * 3, (0.5,) * 3, "squash", "")
    with pytest.raises(VtrbenchError, match="--preprocess-like 'webli'.*ViT-B-32"):
        resolve_preprocessing("ViT-B-32", str(ckpt), like="webli")
    with pytest.raises(VtrbenchError, match=r"std must lie in \[0.001, 10\]"):
        resolve_preprocessing("ViT-B-32", "openai", std=0)


# --------------------------------------------------------------------------- windows


def clip4clip_window_frames(
    frame_count: int, native_fps: float, start: int, end: int, sample_fp: int, max_frames: int
) -> list[int]:
    """The frame numbers CLIP4Clip reads for a window, then its uniform cut (slice_framepos=2).

    Re-implements dataloader_*._get_rawvideo + RawVideoExtractorCV2.video_to_tensor: OpenCV
    seeks to ``sec * fps + ind`` and stops at the first frame it cannot read.
    """
    start, end = max(int(start), 0), max(int(end), 0)
    if start > end:
        start, end = end, start
    elif start == end:
        end += 1
    fps = int(native_fps)
    total_duration = (frame_count + fps - 1) // fps
    start_sec, end_sec = start, end if end <= total_duration else total_duration
    interval = max(fps // sample_fp, 1)
    inds = list(range(0, fps, interval))[:sample_fp]
    read: list[int] = []
    ok = True
    for sec in range(start_sec, end_sec + 1):
        if not ok:
            break
        for ind in inds:
            pos = sec * fps + ind
            if pos >= frame_count:  # cap.read() fails past the last frame
                ok = False
                break
            read.append(pos)
    if len(read) > max_frames:
        read = [read[i] for i in np.linspace(0, len(read) - 1, num=max_frames, dtype=int)]
    return read


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 45 s numbered video at 4 fps (180 frames): longer than DiDeMo's 0..31 window."""
    return write_video(tmp_path_factory.mktemp("win") / "long.mp4", numbered_frames(180, 32, 64), 4)


@pytest.mark.parametrize(
    "window, rate, max_frames",
    [
        ((0, 31), 1, 64),
        ((0, 31), 1, 8),
        ((10, 20), 2, 64),
        ((5, 5), 1, 64),
        ((40, 99), 1, 64),
        ((3, 0), 1, 4),
    ],
)
def test_windowed_sampling_matches_clip4clip(
    long_video: Path, window: tuple[int, int], rate: int, max_frames: int
) -> None:
    from vtrbench.extract.decode import decode_video

    start, end = window
    video = decode_video(long_video, rate=rate, max_frames=max_frames, start_s=start, end_s=end)
    want = clip4clip_window_frames(180, 4.0, start, end, rate, max_frames)
    assert video.frame_index.tolist() == want
    # the decoded pixels are those frames, and all lie inside the window's seconds
    assert read_frame_numbers(video.frames).tolist() == want
    lo, hi = sorted((start, end))
    assert all(lo * 4 <= f < (max(hi, lo + 1) + 1) * 4 for f in want)


def test_didemo_window_samples_32_seconds_not_the_whole_file(long_video: Path) -> None:
    from vtrbench.extract.decode import decode_video

    whole = decode_video(long_video, rate=1, max_frames=64)
    windowed = decode_video(long_video, rate=1, max_frames=64, start_s=0, end_s=31)
    assert whole.frame_index.max() >= 31 * 4 + 4  # the file runs past 31 s
    assert windowed.frame_index.tolist() == [s * 4 for s in range(32)]


def test_window_after_the_end_is_a_decode_error(long_video: Path) -> None:
    from vtrbench.extract.decode import DecodeError, decode_video

    with pytest.raises(DecodeError, match="window 60..70 s starts after the end"):
        decode_video(long_video, start_s=60, end_s=70)


def test_dataset_windows_follow_clip4clip() -> None:
    from vtrbench.datasets import load_dataset

    data = shared_data()
    if data is None:
        pytest.skip("no shared/data annotations")
    didemo = load_dataset("didemo", data / "annotations" / "didemo", None)
    assert {(v.start_s, v.end_s) for v in didemo.videos} == {(0, 31)}
    anet_dir = data / "annotations" / "activitynet"
    anet = load_dataset("activitynet", anet_dir, None)
    durations = {}
    for name in ("train.json", "val_1.json"):
        durations.update({k: v["duration"] for k, v in json.loads((anet_dir / name).read_text()).items()})
    assert all(v.start_s == 0 and v.end_s == int(math.ceil(float(durations[v.id]))) for v in anet.videos)
    msrvtt = load_dataset("msrvtt", data / "annotations" / "msrvtt", None)
    assert all(v.start_s is None and v.end_s is None for v in msrvtt.videos)


def test_custom_windows_parse_and_refuse_bad_rows(tmp_path: Path) -> None:
    from vtrbench.datasets import load_dataset
    from vtrbench.errors import AnnotationError

    csv = tmp_path / "d.csv"
    csv.write_text("video,caption,start_s,end_s\na.mp4,one,2.5,10\na.mp4,two,2.5,10\nb.mp4,three,,\n")
    index = load_dataset("custom", csv, None)
    assert {v.id: (v.start_s, v.end_s) for v in index.videos} == {"a.mp4": (2.5, 10.0), "b.mp4": (None, None)}
    for bad, why in [
        ("a.mp4,one,5,2\n", "end_s .* after start_s"),
        ("a.mp4,one,x,2\n", "start_s must be a number"),
        ("a.mp4,one,-1,2\n", ">= 0"),
        ("a.mp4,one,1,2\na.mp4,two,1,3\n", "different start_s/end_s"),
    ]:
        csv.write_text("video,caption,start_s,end_s\n" + bad)
        with pytest.raises(AnnotationError, match=why):
            load_dataset("custom", csv, None)
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps({"video": "a.mp4", "caption": "x", "start_s": 1, "end_s": 4}) + "\n")
    assert load_dataset("custom", jsonl, None).videos[0].end_s == 4


# --------------------------------------------------------------------------- extraction end to end


def test_extraction_records_windows_hashes_and_preprocessing(
    run_cli: Callable[..., Any], long_video: Path, tmp_path: Path
) -> None:
    from vtrbench.cache import FeatureCache

    other = write_video(tmp_path / "short.mp4", numbered_frames(24, 32, 64), 4)
    csv = tmp_path / "d.csv"
    csv.write_text(
        "video,caption,start_s,end_s\n"
        f"{long_video},a man talks about cars,10,20\n{other},a fearful animation scene,,\n"
    )
    out = tmp_path / "c.h5"
    argv = ["extract", "--dataset", "custom", "--annotations", str(csv), "--model", "vtrbench-tiny"]
    argv += ["--pretrained", "none", "--device", "cpu", "--workers", "0", "--quiet", "--output", str(out)]
    r = run_cli(*argv, "--resize-mode", "squash", "--image-mean", "0.5", "--image-std", "0.5,0.5,0.5")
    assert r.code == 0, r.text
    with FeatureCache(out) as cache:
        ids = cache.read_strings("videos", "id")
        row = ids.index(str(long_video))
        findex = cache.file["videos"]["frame_index"][row]
        got = findex[findex >= 0].tolist()
        assert got == clip4clip_window_frames(180, 4.0, 10, 20, 1, 12)
        win = cache.file["videos"]["window_s"][:]
        assert win[row].tolist() == [10.0, 20.0] and np.isnan(win[1 - row]).all()
        want = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in ids]
        assert cache.file_hashes() == want
        a = cache.attrs
        assert (a["resize_mode"], a["image_mean"], a["image_std"]) == ("squash", [0.5] * 3, [0.5] * 3)
        assert "squash" in a["preprocess"] and "set by option" in a["preprocess_source"]
        assert cache.config["resize_mode"] == "squash" and cache.config["image_mean"] == [0.5] * 3
        assert "custom" in a["windows"]
        # how the CAMoE streams were found, and the coverage that results carry
        assert cache.read_strings("texts", "verb_source") == ["rule", "sentence"]
        assert cache.read_strings("texts", "noun_source") == ["tagged", "tagged"]
        assert (a["pos_no_verb_share"], a["pos_no_noun_share"]) == (0.5, 0.0)
    shown = run_cli("inspect", str(out))
    assert shown.code == 0 and "no verb" in shown.text and "50.0 % (1)" in shown.text
    # another preprocessing is another config: refused, naming what differs
    r2 = run_cli(*argv)
    assert r2.code != 0 and "resize_mode" in r2.text


# --------------------------------------------------------------------------- POS streams

# The MSR-VTT 1k-A test captions that contain no verb at all, labelled by reading all 1,000:
# noun phrases ("a fearful animation scene"); participles used as adjectives ("an animated
# video game song", "other assorted ingredients") count as no verb. For these captions the
# verb stream must fall back to the sentence. (The misspelt "explainin about ..." and
# "goldfish chase each other ..." do have verbs and are NOT in this set.)
VERBLESS_1KA = frozenset(
    (
        "cartoon show for kids",
        "a video about different sports",
        "cartoons of a sponge a squid and a starfish",
        "a man with a very red nose",
        "sports vine clips of football",
        "the demonstration of mobile rack",
        "a news program about overweight people",
        "a trailer for an upcoming movie with people on a beach",
        "a fearful animation scene",
        "the sky roads game on the computer",
        "bbc news story about military crackdown in an unknown asian country",
        "scene of thor from the avengers",
        "a slideshow with captions",
        "a 3d animation of a cabinet with plates",
        "preview for the movie insidious",
        "a bowl of shrimp green onions and other assorted ingredients in a soup broth",
        "disney movie video clips",
        "its a cooking recipe show with chicken vegetables",
        "video of a church chior",
        "various rugby scenes from different games",
        "inside of a toyota car with large space and safety",
        "foreign language music video",
        "the beautiful scene on the screen",
        "two parrots in a bird cage one white chick and on green adult",
        "comedy skit with dc comics character vane",
        "advertisement of seat basket",
        "sports vine clips of basketball",
        "this little light of mine song with different photos",
        "an animated video game song",
        "a woman in lots of pain",
        "foreign language cooking show",
        "a tour through chinese architecture",
        "multi colored horses in a barn and outside in the snow",
        "a special songs for the game",
        "the song hero by skillet with lyrics",
        "instructional video on home improvement subjects",
        "vest of sports vines",
        "episode from spongebob cartoon",
        "scenes of romantic film",
        "a web animation of a businessman",
        "a martial arts cartoon",
        "a woman with a camel",
        "an exploration about the title of professional video advertisement",
        "a song from the movie beauty and the beast",
        "scene from a popular party",
        "lady and her dogs",
        "a news scene of the dog s exercise and diet",
        "screen cast of mine craft oneline",
        "a football player with a football",
        "interview with artist shanai twain",
        "documentary about museum in peninsula",
        "a cartoon with violence",
        "a trailer for a film with words over the top",
        "a news story about hillary clinton",
    )
)


def _msrvtt_1ka_captions() -> list[str]:
    import csv

    data = shared_data()
    path = data / "annotations" / "msrvtt" / "MSRVTT_JSFUSION_test.csv" if data else None
    if path is None or not path.is_file():
        pytest.skip("MSR-VTT 1k-A test CSV not in shared/data")
    with open(path, newline="") as fh:
        return [row["sentence"] for row in csv.DictReader(fh)]


def test_pos_streams_find_the_verb_of_msrvtt_1ka_captions() -> None:
    pytest.importorskip("textblob")
    from vtrbench.extract.tagging import make_tagger

    captions = _msrvtt_1ka_captions()
    assert len(captions) == 1000 and VERBLESS_1KA <= set(captions)
    tagger = make_tagger("pattern")
    tagged = {c: tagger(c) for c in captions}
    no_verb = [c for c, t in tagged.items() if t.verb_source == "sentence"]
    # a verb stream never marks nothing while claiming a verb, and vice versa
    for t in tagged.values():
        assert (t.verb_source == "sentence") == (not any(r == "verb" for _, r in t))
    # Issue 8's target (<= 5 % without a verb), on the captions that have a verb to find;
    # before the caption rules PatternTagger alone missed 173 of the 1,000.
    with_verb = [c for c in captions if c not in VERBLESS_1KA]
    missed = [c for c in no_verb if c not in VERBLESS_1KA]
    assert len(missed) <= 0.05 * len(with_verb), missed
    # and it invents no verb for captions that have none (rule 4 keeps only real VB tags)
    invented = {c: [w for w, r in tagged[c] if r == "verb"] for c in VERBLESS_1KA if c not in no_verb}
    assert len(invented) <= 0.05 * len(VERBLESS_1KA), invented


@pytest.mark.parametrize(
    "caption, verbs",
    [
        ("a little girl does gymnastics", ["does"]),
        ("baseball player hits ball", ["hits"]),
        ("a family is having coversation", ["having"]),
        ("a child in pink watches a white bird in an open box", ["watches"]),
        ("there is a man shooting other people in a corridor", ["shooting"]),
        ("a woman jumps over a bar and attacks a man", ["jumps", "attacks"]),
        ("men are loading their guns with ammunition", ["loading"]),
        ("people act in a comedy program", ["act"]),
        ("this is a jigsaw puzzle video", ["is"]),
        ("outer space pictures that have parts of equipments in them with water droplets on it", ["have"]),
        ("a man teaching students in class", ["teaching"]),
        ("a man cooks burgers and bacon on a grill", ["cooks"]),
        ("foreign language cooking show", []),
        ("sports vine clips of football", []),
        ("various rugby scenes from different games", []),
    ],
)
def test_caption_rules_pick_the_verb(caption: str, verbs: list[str]) -> None:
    """Verbs labelled by reading the (MSR-VTT 1k-A) captions; the tagger alone finds none of them."""
    pytest.importorskip("textblob")
    from textblob.en.taggers import PatternTagger

    from vtrbench.extract.tagging import AUXILIARIES, make_tagger

    raw = [w for w, t in PatternTagger().tag(caption) if t.startswith("VB") and w not in AUXILIARIES]
    assert raw == []  # what the old masks had
    got = make_tagger("pattern")(caption)
    assert [w for w, r in got if r == "verb"] == verbs
    assert got.verb_source == ("rule" if verbs else "sentence")


def test_bad_preprocessing_is_refused_before_work(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    from vtrbench.config import ExtractConfig
    from vtrbench.datasets.base import DatasetIndex, Split, TextEntry, VideoEntry
    from vtrbench.extract.pipeline import RunOptions, extract_features

    # the Python path goes through the same validation as the CLI
    index = DatasetIndex("x", [VideoEntry("v", tmp_path / "v.mp4")], [TextEntry("v", "a cat")], {}, None, "t")
    index.splits["t"] = Split(("v",), (0,))
    for bad, why in [({"resize_mode": "crop"}, "resize mode"), ({"image_std": (0.5, 0.0, 0.5)}, "std")]:
        cfg = ExtractConfig("x", "fp", "vtrbench-tiny", "none", image_size=64, **bad)  # type: ignore[arg-type]
        with pytest.raises(VtrbenchError, match=why):
            extract_features(index, cfg, tmp_path / "c.h5", RunOptions(progress=False))
        assert not (tmp_path / "c.h5.parts").exists()
    csv = tmp_path / "d.csv"
    csv.write_text("video,caption\nv.mp4,a cat\n")
    for opts, why in [(["--image-mean", "0.5,x"], "--image-mean"), (["--preprocess-like", "webli"], "webli")]:
        argv = ["extract", "--dataset", "custom", "--annotations", str(csv), "--model", "vtrbench-tiny"]
        r = run_cli(*argv, "--pretrained", "none", "--output", str(tmp_path / "o.h5"), *opts)
        assert r.code == 2 and why in r.text and "Traceback" not in r.text


def test_config_defaults_are_openai_preprocessing() -> None:
    from vtrbench.config import ExtractConfig

    cfg = ExtractConfig("d", "f", "ViT-B-32", "openai")
    pre = resolve_preprocessing("ViT-B-32", "openai")
    assert (cfg.image_mean, cfg.image_std, cfg.interpolation, cfg.resize_mode, cfg.image_size) == (
        pre.mean,
        pre.std,
        pre.interpolation,
        pre.resize_mode,
        pre.size,
    )
