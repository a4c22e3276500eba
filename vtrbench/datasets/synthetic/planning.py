"""The synthetic dataset's options and its plan: every video's factors, captions and split.

Everything is a deterministic function of :class:`SynthConfig` (Python's
``random.Random``, whose streams are stable across versions, and numpy arithmetic):
:func:`plan` draws all factors and captions without rendering anything.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from vtrbench.config import to_plain
from vtrbench.datasets.synthetic.captions import MAX_CAPTIONS_PER_VIDEO, Caption, draw_captions
from vtrbench.datasets.synthetic.factors import COLOURS, KINDS, SCENES, SHAPES, SIZE_RAMP, Entity
from vtrbench.errors import VtrbenchError


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
            diameter = round(rng.uniform(0.34, 0.42), 4) if kind == "events" else SIZE_RAMP[0]
            cx, cy = round(0.5 + rng.uniform(-0.06, 0.06), 4), round(0.5 + rng.uniform(-0.06, 0.06), 4)
        texture_seed = rng.randrange(2**31)
        split = "test" if p in test_pairs else "train"
        first, second = KINDS[kind]
        members = [(first, entities), (second, entities[::-1] if kind == "events" else entities)]
        if rng.random() < 0.5:
            members.reverse()  # so that neither direction is always the lower id
        for action, ents in members:
            captions = draw_captions(kind, action, ents, scene, config.captions_per_video, rng)
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
