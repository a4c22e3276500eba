"""The procedural video dataset behind ``vtrbench demo`` and the tests (METHODS.md section 9).

Every video shows one scene (a background) and either one entity (a shape in a colour)
doing an action, or two entities appearing one after the other. Factors:

- entity: shape (circle, square, triangle, cross, diamond) x colour (red, green, blue,
  yellow, purple): flat, saturated, mostly 30-42 % of the frame wide, so that they
  survive H.264 4:2:0 compression and a resize to 64 pixels;
- scene: night (navy with stars), desert (sand with dunes), forest (dark green with
  trunks), snow (light grey), city (grey with windows) -- hues away from the entity colours;
- action, in four kinds, each a *pair* of opposite members:
  ``horizontal`` (moves right / moves left), ``vertical`` (moves down / moves up),
  ``size`` (grows / shrinks) and ``events`` ("A appears, then B" / "B appears, then A":
  the first half of the clip shows A alone, the second half B alone).

Order is the only difference inside a pair. Videos are generated in pairs that share
entity, scene, size, position and background texture, and the second member renders
exactly the frames of the first in reverse order (:func:`render_video` output, bit for
bit). So the multiset of frames is identical, and any order-blind video representation
(mean pooling over frames, CLIP4Clip's meanP) gives both members the same vector and
cannot match "moves left" to the right one, while a temporal head (seqTransf, CAMoE)
can. Both members of a pair are always in the same split, so the test gallery holds
the confusable partner of every test video.

Timing: a clip of ``seconds`` s shows ``seconds`` *states*, each held for one second
(``fps`` identical frames). CLIP4Clip samples frame ``sec * fps`` at 1 frame/s, so with
``seconds <= max_frames`` (default 12 and 12) the sampled frames are exactly the
states, and the sampled frames of the two pair members are each other's reverse too.
With continuous motion, or more than ``max_frames`` seconds, the reversed clip would
be sampled at different instants and the two members would no longer share their
sampled frames exactly. Videos are encoded intra-only at a constant quantiser, so each
decoded frame depends only on its own pixels: the decoded pair members are each
other's exact reverse as well.

Lighting: scenes are lit from the top left, so an entity's colour is scaled by
``clip(1.3 - 0.5 (cx + cy), 0.5, 1)`` at centre (cx, cy) (frame fractions): 1.0 near the
top-left corner, 0.8 in the centre, 0.6 near the bottom right. Why: the class token of a
randomly initialised tiny ViT (the offline demo's CLIP) is nearly blind to *where* an
object is. Measured on vtrbench-tiny features (64 px) of 120 clips per kind, rendered
frames, logistic regression on the 12 ordered frame features, 5-fold CV grouped by clip:
left vs right 61 % accurate without shading, 98 % with it (up vs down 63 % and 93 %);
a linear read-out of the x position from single frames has R^2 = 0.00 without shading.
Shading is a function of the position only, so pair members still share their frames
exactly.

Captions: ``captions_per_video`` different templates per video ("a red circle moves
left in the snow", "in the desert, a yellow cross is growing", "a blue square
appears after a red circle at night"...). Each caption carries one role per
whitespace-separated word: ``noun`` for shape and place words, ``verb`` for the words
that name the action (the verb and its direction or result word: "moves left", "goes
from left to right", "gets bigger"; a tagger would call "left" an adverb, but the
direction *is* the action here, and CAMoE's action stream averages verb tokens), and
``""`` for everything else (articles, colours, auxiliaries, "then").

Everything is a deterministic function of :class:`SynthConfig` (Python's
``random.Random``, whose streams are stable across versions, and numpy arithmetic).

Output folder (serves as both ``--annotations`` and ``--video-root``)::

    videos/<id>.mp4   H.264, yuv420p, size x size pixels, fps frames/s, seconds*fps frames
    captions.jsonl    {"video": id, "caption": ..., "roles": [...], "split": "train"|"test"}
    meta.json         generator version, seed, options, factor lists, split sizes, per-video factors
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vtrbench.config import config_hash, to_plain
from vtrbench.errors import VtrbenchError

GENERATOR = "vtrbench.synthetic"
# Bump whenever plan() or the pixels change for the same config: the loader refuses
# other versions and render_dataset re-renders videos made by another version.
GENERATOR_VERSION = 1

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "diamond")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "green": (40, 200, 60),
    "blue": (45, 95, 245),
    "yellow": (245, 210, 30),
    "purple": (160, 55, 215),
}
# Background base colours; the textures are drawn in _background().
SCENES: dict[str, tuple[int, int, int]] = {
    "night": (14, 18, 52),
    "desert": (200, 168, 115),
    "forest": (24, 70, 36),
    "snow": (228, 232, 240),
    "city": (105, 108, 118),
}
# kind -> (first member, second member); the second renders the first's frames reversed.
KINDS: dict[str, tuple[str, str]] = {
    "horizontal": ("right", "left"),
    "vertical": ("down", "up"),
    "size": ("grow", "shrink"),
    "events": ("appear", "appear"),
}
SPLITS = ("train", "test")

# Caption vocabulary. "word/n" is a noun, "word/v" a verb (action word), plain words have no role.
_PLACES: dict[str, tuple[str, ...]] = {
    "night": ("at night/n", "in the night/n"),
    "desert": ("in the desert/n", "on the desert/n"),
    "forest": ("in the forest/n", "in a forest/n"),
    "snow": ("in the snow/n", "on the snow/n"),
    "city": ("in the city/n", "in a city/n"),
}
_ACTIONS: dict[str, tuple[str, ...]] = {
    "right": (
        "moves/v right/v",
        "moves/v to the right/v",
        "is moving/v right/v",
        "goes/v from left/v to right/v",
    ),
    "left": (
        "moves/v left/v",
        "moves/v to the left/v",
        "is moving/v left/v",
        "goes/v from right/v to left/v",
    ),
    "down": ("moves/v down/v", "falls/v", "is moving/v down/v", "goes/v from top/v to bottom/v"),
    "up": ("moves/v up/v", "rises/v", "is moving/v up/v", "goes/v from bottom/v to top/v"),
    "grow": ("grows/v", "is growing/v", "gets/v bigger/v", "grows/v larger/v"),
    "shrink": ("shrinks/v", "is shrinking/v", "gets/v smaller/v", "becomes/v smaller/v"),
}
# {E} "a <colour> <shape>", {T} "the <colour> <shape>", {A} action phrase, {W} place phrase.
_MOTION_TEMPLATES: tuple[str, ...] = (
    "{E} {A} {W}",
    "{W} , {E} {A}",
    "{T} {A} {W}",
    "{W} there is {E} that {A}",
    "{E} {A}",
    "{E} {W} {A}",
)
# {E1} appears first, {E2} second.
_EVENT_TEMPLATES: tuple[str, ...] = (
    "{E1} appears/v , then {E2} appears/v {W}",
    "{W} , {E1} is replaced/v by {E2}",
    "{E2} appears/v after {E1} {W}",
    "{E1} appears/v before {E2} {W}",
    "{E1} turns/v into {E2} {W}",
    "{W} , first {E1} appears/v and then {E2} appears/v",
)
MAX_CAPTIONS_PER_VIDEO = min(len(_MOTION_TEMPLATES), len(_EVENT_TEMPLATES))

_ROLE_SUFFIX = {"/n": "noun", "/v": "verb"}


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the synthetic dataset (plan, pixels and files).

    videos: number of videos (even: they come in pairs); seed: of every random choice;
    size: frame width = height in pixels (even, for yuv420p); fps: frames per second
    (integer, so CLIP4Clip's ``int(fps)`` is exact); seconds: clip length = number of
    states; captions_per_video: distinct templates per video; test_fraction: share of
    pairs in the test split; kinds: which action kinds to draw (balanced round-robin);
    qp: the H.264 constant quantiser (lower = larger files, closer colours).
    """

    videos: int = 256
    seed: int = 0
    size: int = 96
    fps: int = 5
    seconds: int = 12
    captions_per_video: int = 3
    test_fraction: float = 0.25
    kinds: tuple[str, ...] = tuple(KINDS)
    qp: int = 18

    def __post_init__(self) -> None:
        # Lists arrive from JSON or the CLI; a frozen config keeps a tuple.
        object.__setattr__(self, "kinds", tuple(self.kinds))
        _check_int("videos", self.videos, 4)
        if self.videos % 2:
            raise VtrbenchError(
                f"synthetic: videos must be even (they come in direction pairs), got {self.videos}"
            )
        _check_int("seed", self.seed, 0)
        _check_int("size", self.size, 32)
        if self.size % 2:
            raise VtrbenchError(f"synthetic: size must be even (yuv420p), got {self.size}")
        _check_int("fps", self.fps, 1)
        _check_int("seconds", self.seconds, 2)
        _check_int("captions_per_video", self.captions_per_video, 1)
        if self.captions_per_video > MAX_CAPTIONS_PER_VIDEO:
            raise VtrbenchError(
                f"synthetic: captions_per_video must be at most {MAX_CAPTIONS_PER_VIDEO} "
                f"(the number of templates), got {self.captions_per_video}"
            )
        _check_int("qp", self.qp, 0)
        if self.qp > 51:
            raise VtrbenchError(f"synthetic: qp must be in 0..51 (H.264 quantiser), got {self.qp}")
        frac = self.test_fraction
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 < frac < 1.0:
            raise VtrbenchError(f"synthetic: test_fraction must be a number in (0, 1), got {frac!r}")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise VtrbenchError(
                f"synthetic: kinds must be distinct names among {', '.join(KINDS)}, got {list(self.kinds)}"
            )

    @property
    def frames(self) -> int:
        return self.seconds * self.fps


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise VtrbenchError(f"synthetic: {name} must be an integer >= {minimum}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Entity:
    shape: str
    colour: str

    def words(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclasses.dataclass(frozen=True)
class Caption:
    text: str
    roles: tuple[str, ...]  # one per whitespace-separated word of text: "noun", "verb" or ""


@dataclasses.dataclass(frozen=True)
class VideoSpec:
    """One planned video: its factors, its captions and its split.

    entities: one entity, or for kind ``events`` two, in order of appearance.
    diameter: shape size as a fraction of the frame side (the start size for ``size``:
    it then follows a fixed ramp); cx, cy: shape centre as frame fractions (the moving
    coordinate follows a ramp instead); texture_seed: the background's random details.
    """

    id: str
    pair: int
    split: str
    kind: str
    action: str
    entities: tuple[Entity, ...]
    scene: str
    diameter: float
    cx: float
    cy: float
    texture_seed: int
    captions: tuple[Caption, ...]

    def factors(self) -> dict[str, object]:
        """Everything but the captions, as plain JSON-ready data."""
        plain = to_plain(self)
        del plain["captions"]
        return plain


# ---------------------------------------------------------------------------- planning


def plan(config: SynthConfig) -> list[VideoSpec]:
    """Factors, captions and split of every video, without rendering anything.

    Pairs get kinds round-robin (shuffled); shapes, colours and scenes are drawn in
    shuffled rounds (balanced), redrawing combinations already used while the factor
    space allows. Splits are assigned per pair, interleaved over kinds so that every kind
    is in the test split in proportion.
    """
    rng = random.Random(config.seed)
    n_pairs = config.videos // 2
    kinds = [config.kinds[p % len(config.kinds)] for p in range(n_pairs)]
    rng.shuffle(kinds)
    test_pairs = _test_pairs(kinds, config.test_fraction, rng)
    width = max(5, len(str(config.videos - 1)))
    seen: set[tuple[object, ...]] = set()
    bags = {"scene": _Bag(list(SCENES), rng), "shape": _Bag(SHAPES, rng), "colour": _Bag(list(COLOURS), rng)}
    specs: list[VideoSpec] = []
    for p, kind in enumerate(kinds):
        entities, scene = _draw_factors(kind, bags, seen)
        if kind == "horizontal" or kind == "vertical":
            diameter = round(rng.uniform(0.30, 0.40), 4)
            offset = round(rng.uniform(-0.10, 0.10), 4)
            cx, cy = (0.5, round(0.5 + offset, 4)) if kind == "horizontal" else (round(0.5 + offset, 4), 0.5)
        else:
            diameter = round(rng.uniform(0.34, 0.42), 4) if kind == "events" else _SIZE_RAMP[0]
            cx, cy = round(0.5 + rng.uniform(-0.06, 0.06), 4), round(0.5 + rng.uniform(-0.06, 0.06), 4)
        texture_seed = rng.randrange(2**31)
        split = "test" if p in test_pairs else "train"
        first, second = KINDS[kind]
        members = [(first, entities), (second, entities[::-1] if kind == "events" else entities)]
        if rng.random() < 0.5:
            members.reverse()  # so that neither direction is always the lower id
        for action, ents in members:
            captions = _captions(kind, action, ents, scene, config.captions_per_video, rng)
            specs.append(
                VideoSpec(
                    id=f"syn{len(specs):0{width}d}",
                    pair=p,
                    split=split,
                    kind=kind,
                    action=action,
                    entities=ents,
                    scene=scene,
                    diameter=diameter,
                    cx=cx,
                    cy=cy,
                    texture_seed=texture_seed,
                    captions=captions,
                )
            )
    return specs


def _test_pairs(kinds: Sequence[str], fraction: float, rng: random.Random) -> set[int]:
    n_test = min(max(1, round(len(kinds) * fraction)), len(kinds) - 1)
    by_kind: dict[str, list[int]] = {}
    for p, kind in enumerate(kinds):
        by_kind.setdefault(kind, []).append(p)
    for pairs in by_kind.values():
        rng.shuffle(pairs)
    queues = [by_kind[k] for k in sorted(by_kind)]
    interleaved = [q[i] for i in range(max(len(q) for q in queues)) for q in queues if i < len(q)]
    return set(interleaved[:n_test])


class _Bag:
    """Draws items in shuffled rounds, so that every item is used equally often (within one
    round) instead of merely on average."""

    def __init__(self, items: Sequence[str], rng: random.Random) -> None:
        self.items = list(items)
        self.rng = rng
        self.left: list[str] = []

    def draw(self, avoid: str | None = None) -> str:
        for _ in range(2):
            if not self.left:
                self.left = self.items[:]
                self.rng.shuffle(self.left)
            for i, item in enumerate(self.left):
                if item != avoid:
                    return self.left.pop(i)
        raise ValueError(f"no item other than {avoid!r}")


def _draw_factors(
    kind: str, bags: dict[str, _Bag], seen: set[tuple[object, ...]]
) -> tuple[tuple[Entity, ...], str]:
    # Redraw a combination already used, so that two pairs rarely look alike; once the
    # factor space is nearly exhausted, accept repeats (positions still differ).
    for _ in range(64):
        scene = bags["scene"].draw()
        first = Entity(bags["shape"].draw(), bags["colour"].draw())
        if kind == "events":
            second = Entity(bags["shape"].draw(avoid=first.shape), bags["colour"].draw(avoid=first.colour))
            entities: tuple[Entity, ...] = (first, second)
            key: tuple[object, ...] = (kind, frozenset(entities), scene)
        else:
            entities = (first,)
            key = (kind, first, scene)
        if key not in seen:
            break
    seen.add(key)
    return entities, scene


def _captions(
    kind: str, action: str, entities: Sequence[Entity], scene: str, n: int, rng: random.Random
) -> tuple[Caption, ...]:
    templates = _EVENT_TEMPLATES if kind == "events" else _MOTION_TEMPLATES
    captions = []
    for template in rng.sample(templates, n):
        slots = {
            "W": rng.choice(_PLACES[scene]),
            "A": rng.choice(_ACTIONS[action]) if kind != "events" else "",
            "E": f"a {entities[0].colour} {entities[0].shape}/n",
            "T": f"the {entities[0].colour} {entities[0].shape}/n",
            "E1": f"a {entities[0].colour} {entities[0].shape}/n",
            "E2": f"a {entities[-1].colour} {entities[-1].shape}/n",
        }
        captions.append(_fill(template, slots))
    return tuple(captions)


def _fill(template: str, slots: dict[str, str]) -> Caption:
    words: list[str] = []
    roles: list[str] = []
    for token in template.split():
        if token.startswith("{") and token.endswith("}"):
            pieces = slots[token[1:-1]].split()
        else:
            pieces = [token]
        for piece in pieces:
            role = _ROLE_SUFFIX.get(piece[-2:], "")
            word = piece[:-2] if role else piece
            if word == ",":
                words[-1] += ","  # punctuation belongs to the previous word
                continue
            words.append(word)
            roles.append(role)
    return Caption(text=" ".join(words), roles=tuple(roles))


# ---------------------------------------------------------------------------- rendering

# Start and end diameters of the size kind, as frame fractions.
_SIZE_RAMP = (0.22, 0.66)
_MARGIN = 0.05  # between a moving shape and the frame edge, as a frame fraction
_SUPERSAMPLE = 3  # sub-pixels per pixel side: anti-aliased edges compress without ringing


def render_video(spec: VideoSpec, config: SynthConfig) -> np.ndarray:
    """The frames of one video, ``(seconds * fps, size, size, 3)`` uint8 RGB, before encoding.

    The second member of a pair returns exactly the frames of the first in reverse order.
    """
    return np.repeat(_render_states(spec, config), config.fps, axis=0)


def _render_states(spec: VideoSpec, config: SynthConfig) -> np.ndarray:
    """One frame per second, ``(seconds, size, size, 3)`` uint8."""
    n, side = config.seconds, config.size
    background = _background(spec.scene, spec.texture_seed, side)
    # States are computed for the pair's first member; the second member takes them in
    # reverse, so both render identical per-state parameters (no float drift).
    ramp = np.linspace(0.0, 1.0, n)
    states: list[tuple[Entity, float, float, float] | None]
    if spec.kind == "events":
        first, second = spec.entities
        half = n // 2
        states = [(first, spec.cx, spec.cy, spec.diameter)] * half
        states += [None] * (n - 2 * half)  # an odd middle second is empty, so reversal stays exact
        states += [(second, spec.cx, spec.cy, spec.diameter)] * half
    else:
        (entity,) = spec.entities
        d = spec.diameter
        lo, hi = d / 2 + _MARGIN, 1 - d / 2 - _MARGIN
        if spec.kind == "horizontal":
            states = [(entity, float(lo + (hi - lo) * t), spec.cy, d) for t in ramp]
        elif spec.kind == "vertical":
            states = [(entity, spec.cx, float(lo + (hi - lo) * t), d) for t in ramp]
        else:
            a, b = _SIZE_RAMP
            states = [(entity, spec.cx, spec.cy, float(a + (b - a) * t)) for t in ramp]
        if spec.action == KINDS[spec.kind][1]:
            states.reverse()
    out = np.empty((n, side, side, 3), dtype=np.uint8)
    cache: dict[tuple[Entity, float, float, float] | None, np.ndarray] = {}
    for i, state in enumerate(states):
        if state not in cache:
            cache[state] = _compose(background, state, side)
        out[i] = cache[state]
    return out


def _compose(
    background: np.ndarray, state: tuple[Entity, float, float, float] | None, side: int
) -> np.ndarray:
    if state is None:
        return np.rint(background).astype(np.uint8)
    entity, cx, cy, diameter = state
    cover = _coverage(entity.shape, cx * side, cy * side, diameter * side / 2, side)[..., None]
    colour = np.array(COLOURS[entity.colour], dtype=np.float64) * _light(cx, cy)
    return np.rint(background * (1.0 - cover) + colour * cover).astype(np.uint8)


def _light(cx: float, cy: float) -> float:
    """Brightness factor of an entity centred at frame fractions (cx, cy): lit from the top left."""
    return min(1.0, max(0.5, 1.3 - 0.5 * (cx + cy)))


def _coverage(shape: str, cx: float, cy: float, radius: float, side: int) -> np.ndarray:
    """Fraction ``(side, side)`` in [0, 1] of each pixel covered by the shape."""
    ss = _SUPERSAMPLE
    coords = (np.arange(side * ss) + 0.5) / ss
    u = ((coords - cx) / radius)[None, :]
    v = ((coords - cy) / radius)[:, None]
    if shape == "circle":
        inside = u * u + v * v <= 1.0
    elif shape == "square":
        inside = (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    elif shape == "triangle":  # apex up
        inside = (v >= -0.95) & (v <= 0.8) & (np.abs(u) <= (v + 0.95) * (1.0 / 1.75))
    elif shape == "cross":  # an upright plus sign
        inside = ((np.abs(u) <= 0.36) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.36) & (np.abs(u) <= 1.0))
    elif shape == "diamond":
        inside = np.abs(u) + np.abs(v) <= 1.0
    else:
        raise ValueError(f"unknown shape {shape!r}")
    inside = np.broadcast_to(inside, (side * ss, side * ss)).astype(np.float64)
    return inside.reshape(side, ss, side, ss).mean(axis=(1, 3))


def _background(scene: str, texture_seed: int, side: int) -> np.ndarray:
    """Scene background ``(side, side, 3)`` float64 in [0, 255]: coarse textures only,
    so that they survive compression and resizing."""
    rng = random.Random(texture_seed)
    img = np.empty((side, side, 3), dtype=np.float64)
    img[:] = SCENES[scene]
    y = (np.arange(side) + 0.5) / side
    cell = max(1, side // 48)
    if scene == "night":
        for _ in range(24):
            r, c = rng.randrange(side - cell), rng.randrange(side - cell)
            img[r : r + cell, c : c + cell] = (235, 235, 205)
    elif scene == "desert":
        freq, phase = rng.uniform(1.5, 3.0), rng.uniform(0, 2 * math.pi)
        img += (14.0 * np.sin(2 * math.pi * freq * y + phase))[:, None, None]
    elif scene == "forest":
        for _ in range(6):
            c, w = rng.randrange(side), max(2, side // 24)
            img[:, c : c + w] = (14, 44, 22)
    elif scene == "snow":
        img -= (10.0 * y)[:, None, None]
    elif scene == "city":
        step = max(4, side // 8)
        win = max(2, step // 2)
        for r in range(step // 4, side - win, step):
            for c in range(step // 4, side - win, step):
                if rng.random() < 0.6:
                    img[r : r + win, c : c + win] = (150, 155, 165)
    return np.clip(img, 0.0, 255.0)


# ---------------------------------------------------------------------------- files

CAPTIONS_FILE = "captions.jsonl"
META_FILE = "meta.json"
VIDEO_DIR = "videos"


MARKER_FILE = ".vtrbench-synth-in-progress"


def render_dataset(
    config: SynthConfig,
    out_dir: str | Path,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Render every planned video into ``out_dir`` and write its annotation files.

    Resumable: a video already in ``out_dir/videos`` that this generator made from the
    same spec and options (a fingerprint stored in the mp4's ``comment`` tag) is kept;
    every other one is (re)written to a temporary name and renamed, so a killed run
    never leaves half a video. While rendering, the folder holds a marker with the
    planned ``meta.json``; the annotation files are written (atomically) only once all
    videos exist, so a folder with a ``meta.json`` is always complete.

    A folder holding anything else (another synthetic dataset, other files) is refused;
    with ``overwrite`` a synthetic dataset there is replaced as a whole: the new one is
    rendered beside it and swapped in when complete (never a mix of old and new videos).
    ``progress(done, total)`` is called after each video. Returns ``out_dir``.
    """
    try:
        import av
    except ImportError:
        raise VtrbenchError(
            "rendering the synthetic dataset needs PyAV: pip install 'vtrbench[extract]'"
        ) from None
    out = Path(out_dir)
    specs = plan(config)
    meta_text = json.dumps(_meta(config, specs), indent=1, sort_keys=True) + "\n"
    state = _folder_state(out, meta_text, specs)
    if state == "other":
        if not overwrite:
            raise VtrbenchError(
                f"synthetic: {out} is not empty ({_describe(out)}); use --overwrite to replace it, "
                "or choose an empty folder"
            )
        if not _is_synthetic(out):
            raise VtrbenchError(
                f"synthetic: {out} holds files that are not a synthetic dataset ({_describe(out)}); "
                "refusing to replace them: choose an empty folder"
            )
        side = out.with_name(f".{out.name}.synth-new")
        if side.exists() and _folder_state(side, meta_text, specs) == "other":
            shutil.rmtree(side, ignore_errors=True)
        _render_into(side, config, specs, meta_text, progress, av)
        _swap(side, out)
        shutil.rmtree(side, ignore_errors=True)
        return out
    _render_into(out, config, specs, meta_text, progress, av)
    return out


def _folder_state(out: Path, meta_text: str, specs: Sequence[VideoSpec]) -> str:
    """ "empty", "ours" (this very dataset, complete or interrupted: resume in place) or "other"."""
    if not out.exists():
        return "empty"
    if not out.is_dir():
        raise VtrbenchError(f"synthetic: {out} is a file, not a folder")
    try:
        entries = {p.name for p in out.iterdir()}
    except OSError as e:
        raise VtrbenchError(f"synthetic: cannot read {out} ({e.strerror})") from None
    if not entries:
        return "empty"
    planned = {f"{s.id}.mp4" for s in specs}
    if not {e for e in entries if ".tmp" not in e} <= {META_FILE, CAPTIONS_FILE, VIDEO_DIR, MARKER_FILE}:
        return "other"
    if (out / VIDEO_DIR).is_dir():
        # videos other than planned ones (a stale larger dataset) would make a mixed folder
        stale = [p for p in (out / VIDEO_DIR).iterdir() if p.name not in planned and ".tmp" not in p.name]
        if stale:
            return "other"
    for name in (MARKER_FILE, META_FILE):
        try:
            if (out / name).read_text(encoding="utf-8") == meta_text:
                return "ours"
        except (OSError, UnicodeDecodeError):
            continue
    return "other"


def _is_synthetic(out: Path) -> bool:
    names = {p.name for p in out.iterdir() if ".tmp" not in p.name}
    if not names <= {META_FILE, CAPTIONS_FILE, VIDEO_DIR, MARKER_FILE}:
        return False
    for name in (META_FILE, MARKER_FILE):
        try:
            if json.loads((out / name).read_text(encoding="utf-8")).get("generator") == GENERATOR:
                return True
        except (OSError, ValueError, AttributeError, RecursionError):
            continue
    return False


def _describe(out: Path) -> str:
    names = sorted(p.name for p in out.iterdir())
    return f"{len(names)} entries: " + ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")


def _swap(new: Path, old: Path) -> None:
    """Exchange two folders in one step where Linux allows it (renameat2), else two renames."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        rename2 = libc.renameat2
    except (OSError, AttributeError):
        rename2 = None
    if rename2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if rename2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(old), rename_exchange) == 0:
            return
    aside = old.with_name(f".{old.name}.synth-old")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(old, aside)
    os.replace(new, old)
    os.replace(aside, new)


def _render_into(
    out: Path,
    config: SynthConfig,
    specs: Sequence[VideoSpec],
    meta_text: str,
    progress: Callable[[int, int], None] | None,
    av: Any,
) -> None:
    meta_path = out / META_FILE
    try:
        (out / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
        if meta_path.exists() and meta_path.read_text(encoding="utf-8") != meta_text:
            meta_path.unlink()
        if not meta_path.exists():
            _write_atomically(out / MARKER_FILE, lambda tmp: tmp.write_text(meta_text, encoding="utf-8"))
    except OSError as e:
        raise VtrbenchError(f"synthetic: cannot write to {out} ({e.strerror})") from None
    for done, spec in enumerate(specs, start=1):
        path = out / VIDEO_DIR / f"{spec.id}.mp4"
        tag = _fingerprint(spec, config)
        if _read_tag(path, av) != tag:
            _write_atomically(
                path,
                lambda tmp, spec=spec, tag=tag: _encode(tmp, render_video(spec, config), config, tag, av),
            )
        if progress is not None:
            progress(done, len(specs))
    lines = []
    for spec in specs:
        for caption in spec.captions:
            record = {
                "video": spec.id,
                "caption": caption.text,
                "roles": list(caption.roles),
                "split": spec.split,
            }
            lines.append(json.dumps(record, ensure_ascii=True) + "\n")
    _write_atomically(out / CAPTIONS_FILE, lambda tmp: tmp.write_text("".join(lines), encoding="utf-8"))
    _write_atomically(meta_path, lambda tmp: tmp.write_text(meta_text, encoding="utf-8"))
    (out / MARKER_FILE).unlink(missing_ok=True)


def _meta(config: SynthConfig, specs: Sequence[VideoSpec]) -> dict[str, object]:
    splits = {
        name: {
            "videos": sum(s.split == name for s in specs),
            "captions": sum(len(s.captions) for s in specs if s.split == name),
        }
        for name in SPLITS
    }
    return {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "seed": config.seed,
        "config": to_plain(config),
        "frames_per_video": config.frames,
        "encoding": {"codec": "libx264", "pix_fmt": "yuv420p", "qp": config.qp, "gop": 1},
        "factors": {
            "shapes": list(SHAPES),
            "colours": {k: list(v) for k, v in COLOURS.items()},
            "scenes": {k: list(v) for k, v in SCENES.items()},
            "kinds": {k: list(v) for k, v in KINDS.items()},
        },
        "splits": splits,
        "videos": [s.factors() for s in specs],
    }


def _fingerprint(spec: VideoSpec, config: SynthConfig) -> str:
    pixels = {k: v for k, v in to_plain(config).items() if k in ("size", "fps", "seconds", "qp")}
    digest = config_hash({"version": GENERATOR_VERSION, "spec": spec.factors(), "render": pixels})
    return f"{GENERATOR} v{GENERATOR_VERSION} {digest}"


def _read_tag(path: Path, av: Any) -> str | None:
    if not path.is_file():
        return None
    try:
        with av.open(str(path), mode="r") as container:
            return container.metadata.get("comment")
    except Exception:  # any unreadable file is simply rendered again
        return None


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    # The suffix stays last so that FFmpeg still recognises the container.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise VtrbenchError(f"synthetic: cannot write {path} ({e.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _encode(path: Path, frames: np.ndarray, config: SynthConfig, tag: str, av: Any) -> None:
    """H.264 intra-only at constant quantiser: every decoded frame depends on its own pixels only."""
    from fractions import Fraction

    with av.open(str(path), mode="w", format="mp4") as container:
        container.metadata["comment"] = tag
        stream = container.add_stream("libx264", rate=config.fps)
        stream.width = stream.height = config.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qp": str(config.qp), "g": "1", "preset": "veryfast", "threads": "1"}
        time_base = Fraction(1, config.fps)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
