"""Captions of a synthetic video, with one known role per word.

``captions_per_video`` different templates per video ("a red circle moves left in the
snow", "in the desert, a yellow cross is growing", "a blue square appears after a red
circle at night"...). Each caption carries one role per whitespace-separated word:
``noun`` for shape and place words, ``verb`` for the words that name the action (the verb
and its direction or result word: "moves left", "goes from left to right", "gets bigger";
a tagger would call "left" an adverb, but the direction *is* the action here, and CAMoE's
action stream averages verb tokens), and ``""`` for everything else (articles, colours,
auxiliaries, "then").
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from vtrbench.datasets.synthetic.factors import Entity

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
class Caption:
    text: str
    roles: tuple[str, ...]  # one per whitespace-separated word of text: "noun", "verb" or ""


def draw_captions(
    kind: str, action: str, entities: Sequence[Entity], scene: str, n: int, rng: random.Random
) -> tuple[Caption, ...]:
    """``n`` captions from distinct templates; draws from ``rng`` in the plan's fixed order."""
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
