"""``history`` in result files as readers see it: refused with one line naming the key when no run could
have written it (vtrbench.report.validate), accepted without the fields older files lack, and turned
into the page's curves without letting anything but finite numbers through (vtrbench.browse.curves)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from vtrbench.browse import curves
from vtrbench.errors import VtrbenchError
from vtrbench.report.validate import validate_result

FIXTURE = sorted((Path(__file__).parents[1] / "fixtures" / "results" / "msrvtt").glob("*.json"))[0]


@pytest.fixture
def result() -> dict[str, Any]:
    data = json.loads(FIXTURE.read_text())
    data["history"] = [
        {"epoch": 1, "loss": 3.0, "seconds": 1.0, "pairs_per_s": 50.0, "logit_scale": 99.0, "lr": 1e-4,
         "val": {"t2v/R@1": 10.0, "v2t/R@1": 12.0, "RSum": 150.0}},
        {"epoch": 2, "loss": 2.5, "seconds": 1.0, "pairs_per_s": 50.0, "logit_scale": 98.0, "lr": 5e-5,
         "val": {"t2v/R@1": 11.0, "v2t/R@1": 13.0, "RSum": 160.0}},
    ]  # fmt: skip
    return data


def test_a_full_history_and_an_old_one_are_valid(result: dict[str, Any]) -> None:
    validate_result(result, "r.json")
    old = json.loads(FIXTURE.read_text())  # epoch, loss, seconds, pairs_per_s only: written before lr
    assert "lr" not in old["history"][0]
    validate_result(old, "old.json")
    for history in ([], None):
        validate_result({**result, "history": history}, "r.json")
    # a plugin loss may be negative, and a diverging one huge: both are real outcomes
    hostile = copy.deepcopy(result)
    hostile["history"][0]["loss"], hostile["history"][1]["loss"] = -1e308, 1e308
    validate_result(hostile, "r.json")
    del result["history"]
    validate_result(result, "r.json")


@pytest.mark.parametrize(
    ("damage", "key"),
    [
        (lambda h: h.__setitem__(0, "epoch 1"), "history[0]"),
        (lambda h: h[1].__setitem__("epoch", 1), "history[1].epoch"),
        (lambda h: h[0].__setitem__("epoch", 0), "history[0].epoch"),
        (lambda h: h[0].__setitem__("epoch", True), "history[0].epoch"),
        (lambda h: h[0].pop("loss"), "history[0].loss"),
        (lambda h: h[0].__setitem__("loss", "3.0"), "history[0].loss"),
        (lambda h: h[0].__setitem__("loss", None), "history[0].loss"),
        (lambda h: h[1].__setitem__("lr", -1e-4), "history[1].lr"),
        (lambda h: h[1].__setitem__("seconds", -1), "history[1].seconds"),
        (lambda h: h[0].__setitem__("logit_scale", "100"), "history[0].logit_scale"),
        (lambda h: h[0].__setitem__("val", [10.0]), "history[0].val"),
        (lambda h: h[0]["val"].__setitem__("t2v/R@1", 101.0), "history[0].val.t2v/R@1"),
        (lambda h: h[0]["val"].__setitem__("RSum", -1.0), "history[0].val.RSum"),
        (lambda h: h[0]["val"].__setitem__("RSum", "150"), "history[0].val.RSum"),
    ],
)
def test_an_impossible_history_is_refused_naming_the_key(
    result: dict[str, Any], damage: Any, key: str
) -> None:
    damage(result["history"])
    with pytest.raises(VtrbenchError) as e:
        validate_result(result, "r.json")
    assert str(e.value).startswith(f"r.json: {key} ") and "\n" not in str(e.value)


def test_a_history_that_is_not_a_list_is_refused(result: dict[str, Any]) -> None:
    with pytest.raises(VtrbenchError, match=r"^r\.json: history must be a list"):
        validate_result({**result, "history": {"epoch": 1}}, "r.json")


def test_curves_carry_only_finite_numbers(result: dict[str, Any]) -> None:
    got = curves(result)
    assert got == {
        "seed": result["seed"],
        "epoch": [1, 2],
        "loss": [3.0, 2.5],
        "lr": [1e-4, 5e-5],
        "logit_scale": [99.0, 98.0],
        "val": {"RSum": [150.0, 160.0], "t2v/R@1": [10.0, 11.0], "v2t/R@1": [12.0, 13.0]},
    }
    # what a reader never passes (NaN, infinities, strings, booleans) still becomes a gap, not a number
    h = result["history"]
    h[0]["loss"], h[1]["logit_scale"], h[0]["lr"], h[1]["lr"] = math.nan, math.inf, "1e-4", True
    h[1]["val"] = {"t2v/R@1": -math.inf}
    got = curves(result)
    assert got["loss"] == [None, 2.5] and got["logit_scale"] == [99.0, None]
    assert "lr" not in got  # no epoch holds a drawable value: no series
    assert got["val"]["t2v/R@1"] == [10.0, None] and got["val"]["RSum"] == [150.0, None]
    json.dumps(got, allow_nan=False)  # embeddable as strict JSON
    # an old file: no lr, no logit scale, no val; no history at all: no curves
    old = json.loads(FIXTURE.read_text())
    assert sorted(curves(old)) == ["epoch", "loss", "seed"]
    assert curves({**old, "history": []}) is None and curves({"seed": 0}) is None
