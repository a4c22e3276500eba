"""The synthetic dataset: determinism, exact pair reversal, captions, files, loader, signal."""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vtrbench.datasets import load_dataset
from vtrbench.datasets.synthetic import (
    COLOURS,
    SCENES,
    SHAPES,
    SynthConfig,
    VideoSpec,
    plan,
    render_dataset,
    render_video,
)
from vtrbench.errors import AnnotationError, VtrbenchError

av = pytest.importorskip("av")

SMALL = SynthConfig(videos=16, seed=3, size=48, fps=2, seconds=6)


def pairs(specs: list[VideoSpec]) -> list[tuple[VideoSpec, VideoSpec]]:
    by_pair: dict[int, list[VideoSpec]] = {}
    for s in specs:
        by_pair.setdefault(s.pair, []).append(s)
    assert all(len(members) == 2 for members in by_pair.values())
    return [(a, b) for a, b in by_pair.values()]


def decode(path: Path) -> tuple[np.ndarray, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, float(stream.guessed_rate)


# ---------------------------------------------------------------------------- plan and pixels


def test_plan_is_deterministic_and_depends_on_the_seed() -> None:
    assert plan(SMALL) == plan(SMALL)
    other = plan(dataclasses.replace(SMALL, seed=4))
    assert [s.factors() for s in other] != [s.factors() for s in plan(SMALL)]
    assert [s.captions for s in other] != [s.captions for s in plan(SMALL)]


def test_rendering_is_deterministic_and_depends_on_the_seed() -> None:
    spec = plan(SMALL)[0]
    frames = render_video(spec, SMALL)
    assert frames.shape == (SMALL.seconds * SMALL.fps, 48, 48, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, render_video(spec, SMALL))
    other = plan(dataclasses.replace(SMALL, seed=4))[0]
    assert not np.array_equal(frames, render_video(other, SMALL))


def test_plan_balances_kinds_and_keeps_pairs_in_one_split() -> None:
    config = SynthConfig(videos=64, seed=0)
    specs = plan(config)
    assert len(specs) == 64 and len({s.id for s in specs}) == 64
    assert Counter(s.kind for s in specs) == {"horizontal": 16, "vertical": 16, "size": 16, "events": 16}
    assert sum(s.split == "test" for s in specs) == 16  # 25 % of 32 pairs = 8 pairs
    # Every kind is represented in the test gallery.
    assert {s.kind for s in specs if s.split == "test"} == {"horizontal", "vertical", "size", "events"}
    for a, b in pairs(specs):
        assert a.split == b.split and a.scene == b.scene and a.kind == b.kind
        assert set(a.entities) == set(b.entities)
        if a.kind == "events":
            assert a.entities == b.entities[::-1] and a.entities[0] != a.entities[1]
        else:
            assert {a.action, b.action} in ({"left", "right"}, {"up", "down"}, {"grow", "shrink"})


@pytest.mark.parametrize("seconds", [6, 5])  # odd: the events' middle second
def test_pair_members_are_exact_reverses(seconds: int) -> None:
    config = dataclasses.replace(SMALL, seconds=seconds)
    for a, b in pairs(plan(config)):
        fa, fb = render_video(a, config), render_video(b, config)
        assert np.array_equal(fa, fb[::-1]), (a.id, b.id)
        # ... and order matters: the clip is not its own reverse.
        assert not np.array_equal(fa, fa[::-1]), a.id
        # Each state is held for one second, so the sampled frames (sec * fps) reverse too.
        sampled = np.arange(seconds) * config.fps
        assert np.array_equal(fa[sampled], fb[sampled][::-1])


def test_config_rejects_bad_options() -> None:
    for bad in (
        {"videos": 7},
        {"videos": 2},
        {"size": 47},
        {"fps": 0},
        {"seconds": 1},
        {"captions_per_video": 99},
        {"test_fraction": 1.0},
        {"kinds": ("sideways",)},
        {"qp": 60},
    ):
        with pytest.raises(VtrbenchError, match=next(iter(bad))):
            SynthConfig(**bad)


# ---------------------------------------------------------------------------- captions

PLACE_WORDS = set(SCENES)
UP_WORDS, DOWN_WORDS = {"up", "top", "rises"}, {"down", "bottom", "falls"}


def test_captions_have_aligned_roles_and_say_what_is_shown() -> None:
    config = SynthConfig(videos=80, seed=1, captions_per_video=3)
    for spec in plan(config):
        assert len(spec.captions) == 3 and len({c.text for c in spec.captions}) == 3
        for cap in spec.captions:
            words = cap.text.split()
            assert len(cap.roles) == len(words), cap.text
            bare = [w.strip(",") for w in words]
            nouns = [w for w, r in zip(bare, cap.roles, strict=True) if r == "noun"]
            verbs = [w for w, r in zip(bare, cap.roles, strict=True) if r == "verb"]
            assert set(nouns) <= set(SHAPES) | PLACE_WORDS, cap.text
            assert all(r == "noun" for w, r in zip(bare, cap.roles, strict=True) if w in SHAPES)
            assert not set(verbs) & (set(COLOURS) | set(SHAPES) | {"a", "the", "is"}), cap.text
            assert verbs, cap.text
            # Entities appear with their colours, in the caption's stated order.
            for e in spec.entities:
                assert f"{e.colour} {e.shape}" in cap.text
            if spec.scene in bare:
                assert nouns[-1] == spec.scene or nouns[0] == spec.scene
            assert not (PLACE_WORDS - {spec.scene}) & set(bare)
            if spec.kind == "horizontal":
                last = [w for w in bare if w in ("left", "right")][-1]
                assert last == spec.action, cap.text
            elif spec.kind == "vertical":
                last = [w for w in bare if w in UP_WORDS | DOWN_WORDS][-1]
                assert (last in UP_WORDS) == (spec.action == "up"), cap.text
            elif spec.kind == "size":
                assert any(w in cap.text for w in ("grow", "bigger", "larger")) == (spec.action == "grow")


# ---------------------------------------------------------------------------- files


def shape_interior(spec: VideoSpec, config: SynthConfig, which: int, frame: int) -> np.ndarray:
    """Pixels ``(H, W)`` bool well inside entity ``which`` at ``frame``: where a render with
    that entity recoloured differs, shrunk by 2 pixels so that chroma subsampling at the
    edges does not count."""
    other = next(c for c in COLOURS if all(e.colour != c for e in spec.entities))
    entities = list(spec.entities)
    entities[which] = dataclasses.replace(entities[which], colour=other)
    recoloured = dataclasses.replace(spec, entities=tuple(entities))
    diff = np.any(render_video(spec, config)[frame] != render_video(recoloured, config)[frame], axis=-1)
    inside = diff.copy()
    for axis in (0, 1):
        for shift in (-2, -1, 1, 2):
            inside &= np.roll(diff, shift, axis=axis)
    return inside


def test_rendered_mp4_decodes_with_recognisable_colours(tmp_path: Path) -> None:
    config = SynthConfig(videos=20, seed=5)
    out = render_dataset(config, tmp_path / "ds")
    specs = plan(config)
    nominal = {name: np.array(rgb, float) / sum(rgb) for name, rgb in COLOURS.items()}
    decoded = {}
    checked = set()
    for spec in specs:
        frames, fps = decode(out / "videos" / f"{spec.id}.mp4")
        decoded[spec.id] = frames
        assert frames.shape == (60, 96, 96, 3) and fps == 5.0
        rendered = render_video(spec, config)
        assert np.abs(frames.astype(int) - rendered).mean() < 3.0
        # Two entities: the first is on screen in the first frame, the second in the last.
        # One entity: checked at whichever end it is larger (grow/shrink).
        if len(spec.entities) == 2:
            views = [(0, 0), (1, -1)]
        else:
            views = [max([(0, 0), (0, -1)], key=lambda v: shape_interior(spec, config, *v).sum())]
        for which, frame in views:
            inside = shape_interior(spec, config, which, frame)
            assert inside.sum() > 100  # a large shape
            mean = frames[frame][inside].mean(axis=0)
            assert np.abs(mean - rendered[frame][inside].mean(axis=0)).max() < 12
            chroma = mean / mean.sum()
            closest = min(nominal, key=lambda n: float(np.abs(nominal[n] - chroma).sum()))
            assert closest == spec.entities[which].colour, (spec.id, mean)
            checked.add(closest)
    assert checked == set(COLOURS)
    # Intra-only coding: the decoded pair members are exact reverses as well.
    for a, b in pairs(specs):
        assert np.array_equal(decoded[a.id], decoded[b.id][::-1])


def test_render_is_resumable_and_atomic(tmp_path: Path) -> None:
    config = dataclasses.replace(SMALL, videos=6)
    out = render_dataset(config, tmp_path)
    videos = sorted((out / "videos").iterdir())
    assert len(videos) == 6 and not [p for p in out.rglob("*") if ".tmp" in p.name]
    before = {p.name: (os.stat(p).st_ino, os.stat(p).st_mtime_ns, p.read_bytes()) for p in videos}
    annotations = {n: (out / n).read_bytes() for n in ("meta.json", "captions.jsonl")}
    videos[2].unlink()
    videos[4].write_bytes(videos[4].read_bytes()[:500])  # a damaged file is rendered again
    render_dataset(config, out)
    after = {p.name: (os.stat(p).st_ino, os.stat(p).st_mtime_ns, p.read_bytes()) for p in videos}
    rewritten = {n for n in before if after[n][:2] != before[n][:2]}
    assert rewritten == {videos[2].name, videos[4].name}
    assert all(after[n][2] == before[n][2] for n in before)  # identical bytes
    assert {n: (out / n).read_bytes() for n in annotations} == annotations
    # Another seed is another dataset: refused in a folder that holds one, unless overwrite, which
    # renders it beside the old one (still complete meanwhile) and swaps it in as a whole.
    with pytest.raises(VtrbenchError, match="not empty.*--overwrite"):
        render_dataset(dataclasses.replace(config, seed=9), out)
    seen_meta = []
    render_dataset(
        dataclasses.replace(config, seed=9),
        out,
        progress=lambda i, n: seen_meta.append(json.loads((out / "meta.json").read_text())["seed"]),
        overwrite=True,
    )
    assert seen_meta == [config.seed] * 6
    assert all(os.stat(p).st_ino != after[p.name][0] for p in videos)
    assert json.loads((out / "meta.json").read_text())["seed"] == 9
    assert sorted(p.name for p in out.iterdir()) == ["captions.jsonl", "meta.json", "videos"]


# ---------------------------------------------------------------------------- loader


def test_loader_reads_a_rendered_folder(tmp_path: Path) -> None:
    config = dataclasses.replace(SMALL, videos=12, captions_per_video=2)
    out = render_dataset(config, tmp_path)
    index = load_dataset("synthetic", out, None)
    specs = plan(config)
    for split in ("train", "test"):
        members = [s for s in specs if s.split == split]
        assert index.describe()[split] == {"videos": len(members), "captions": 2 * len(members)}
    assert index.default_train == "train" and index.default_test == "test"
    assert index.max_words == 32 and index.max_frames == 12
    assert all(v.path.is_file() for v in index.videos)
    lines = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [(t.video, t.caption, list(t.roles or ())) for t in index.texts] == [
        (r["video"], r["caption"], r["roles"]) for r in lines
    ]
    # A separate video root holding the files directly.
    moved = load_dataset("synthetic", out, out / "videos")
    assert all(v.path.is_file() for v in moved.videos)


def test_loader_without_a_folder_describes_the_default_plan() -> None:
    index = load_dataset("synthetic", None, None)
    specs = plan(SynthConfig())
    assert len(index.videos) == len(specs) and index.warnings
    assert index.describe()["test"]["videos"] == sum(s.split == "test" for s in specs)
    assert not any(v.path.exists() for v in index.videos)
    assert all(t.roles is not None for t in index.texts)


def test_loader_refuses_other_folders(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="meta.json"):
        load_dataset("synthetic", tmp_path, None)
    with pytest.raises(AnnotationError, match="does not exist"):
        load_dataset("synthetic", tmp_path / "nowhere", None)
    out = render_dataset(dataclasses.replace(SMALL, videos=4), tmp_path / "ds")
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "version": 999}))
    with pytest.raises(AnnotationError, match="version 999"):
        load_dataset("synthetic", out, None)
    (out / "meta.json").write_text(json.dumps(meta))
    lines = (out / "captions.jsonl").read_text().splitlines()
    bad = json.loads(lines[1])
    bad["roles"] = bad["roles"][:-1]
    (out / "captions.jsonl").write_text("\n".join([lines[0], json.dumps(bad), *lines[2:]]))
    with pytest.raises(AnnotationError, match="line 2: key 'roles'"):
        load_dataset("synthetic", out, None)


def test_deprecated_module_reexports_the_generator() -> None:
    # vtrbench.synthetic moved into the dataset family; the old import path must keep working.
    import vtrbench.datasets.synthetic as new
    import vtrbench.synthetic as old

    assert "Deprecated: moved to vtrbench.datasets.synthetic" in (old.__doc__ or "")
    assert old.__all__ and all(getattr(old, name) is getattr(new, name) for name in old.__all__)
    # meta.json and the mp4 fingerprints keep the generator name they were written with
    assert new.GENERATOR == "vtrbench.synthetic"


# ---------------------------------------------------------------------------- signal


def block_sums(frames: np.ndarray, blocks: int = 8) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 -> ``(T, blocks * blocks * 3)`` int64 block sums (integers: pooling
    them in any order gives bit-identical results)."""
    t, h, w, _ = frames.shape
    x = frames.astype(np.int64).reshape(t, blocks, h // blocks, blocks, w // blocks, 3)
    return x.sum(axis=(2, 4)).reshape(t, -1)


def test_signal_is_learnable_and_order_is_invisible_to_mean_pooling() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    config = SynthConfig(videos=120, seed=2, size=48, fps=1, kinds=("horizontal",))
    specs = plan(config)
    blocks = [block_sums(render_video(s, config)) for s in specs]
    train = np.array([s.split == "train" for s in specs])
    test = ~train
    assert test.sum() == 30

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x[train], y[train])
        return float((clf.predict(x[test]) == y[test]).mean())

    # Entity colour from mean-pooled block colours: far above chance (1/5; 0.8 to 1.0 over seeds 0-7).
    pooled = np.stack([b.sum(axis=0) for b in blocks]).astype(np.float64)
    colour = np.array([s.entities[0].colour for s in specs])
    assert accuracy(pooled, colour) > 0.6

    # Where the object is at each step: each frame's deviation from the clip's mean frame
    # (scaled by T to stay in integers).
    moves = [np.abs(len(b) * b - b.sum(axis=0)) for b in blocks]
    direction = np.array([s.action for s in specs])
    # Mean pooling gives the two members of each pair exactly the same vector ...
    mean_pooled = np.stack([m.sum(axis=0) for m in moves])
    row = {s.id: i for i, s in enumerate(specs)}
    for a, b in pairs(specs):
        assert np.array_equal(mean_pooled[row[a.id]], mean_pooled[row[b.id]])
    # ... so any classifier gives both the same label: exactly one right per test pair.
    assert accuracy(mean_pooled.astype(np.float64), direction) == 0.5
    # The ordered frames tell left from right.
    ordered = np.stack([m.ravel() for m in moves]).astype(np.float64)
    assert accuracy(ordered, direction) > 0.9
