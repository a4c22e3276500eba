"""The pixels of a synthetic video, before encoding.

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
"""

from __future__ import annotations

import math
import random

import numpy as np

from vtrbench.datasets.synthetic.factors import COLOURS, KINDS, SCENES, SIZE_RAMP, Entity
from vtrbench.datasets.synthetic.planning import SynthConfig, VideoSpec

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
            a, b = SIZE_RAMP
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
