"""What a synthetic video can show: the factor lists, the entity, and the generator's identity.

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
exactly the frames of the first in reverse order (:func:`~vtrbench.datasets.synthetic.render.render_video`
output, bit for bit). So the multiset of frames is identical, and any order-blind video
representation (mean pooling over frames, CLIP4Clip's meanP) gives both members the same
vector and cannot match "moves left" to the right one, while a temporal head (seqTransf,
CAMoE) can. Both members of a pair are always in the same split, so the test gallery holds
the confusable partner of every test video.

Bottom of the generator: imports nothing from vtrbench.
"""

from __future__ import annotations

import dataclasses

# Written into meta.json and every video's fingerprint: it keeps the module path the generator had
# when version 1 was released, so that folders rendered before the move still load and resume.
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
# Background base colours; the textures are drawn in render._background().
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

# Start and end diameters of the size kind, as frame fractions: the plan starts every
# ``size`` video at the first, the renderer ramps to the second.
SIZE_RAMP = (0.22, 0.66)


@dataclasses.dataclass(frozen=True)
class Entity:
    shape: str
    colour: str

    def words(self) -> str:
        return f"{self.colour} {self.shape}"
