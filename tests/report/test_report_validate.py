"""Impossible result files are refused with one line naming the file and the key (validate_result).

Each case changes one value of a valid result so that no evaluation could have written it; the
untouched file passes (so a refusal is caused by the change, not by the fixture).
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.report_helpers import scored_result
from vtrbench.cli import main
from vtrbench.errors import VtrbenchError
from vtrbench.report import build_report, load_results, validate_result

FIXTURE = Path(__file__).parents[1] / "fixtures" / "results" / "msrvtt"
GOOD = FIXTURE / "msrvtt.meanp.infonce.016d6569.s0.json"


def _set(path: str, value: Any) -> Callable[[dict], None]:
    keys = path.split(".")

    def change(data: dict) -> None:
        node = data
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _rank(post: str, d: str, i: int, value: float) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["per_query_ranks"][post][d][i] = value

    return change


# (name, change, the key the error must name)
SCHEMA1 = [
    ("recall-above-100", _set("metrics.raw.t2v.R@1", 150.0), "metrics.raw.t2v.R@1"),
    ("recall-negative", _set("metrics.raw.t2v.R@1", -5.0), "metrics.raw.t2v.R@1"),
    ("mdr-zero", _set("metrics.raw.v2t.MdR", 0.0), "metrics.raw.v2t.MdR"),
    ("mnr-beyond-gallery", _set("metrics.dsl.t2v.MnR", 21.0), "metrics.dsl.t2v.MnR"),
    ("recall-falls-with-k", _set("metrics.raw.t2v.R@10", 50.0), "metrics.raw.t2v.R@10"),
    ("recall-contradicts-ranks", _set("metrics.raw.t2v.R@1", 80.0), "metrics.raw.t2v.R@1"),
    ("mnr-contradicts-ranks", _set("metrics.qbnorm.v2t.MnR", 2.0), "metrics.qbnorm.v2t.MnR"),
    ("mdr-contradicts-ranks", _set("metrics.raw.t2v.MdR", 3.0), "metrics.raw.t2v.MdR"),
    ("rsum-not-the-sum", _set("metrics.raw.RSum", 1.0), "metrics.raw.RSum"),
    ("n-queries-negative", _set("protocol.n_queries", -3), "protocol.n_queries"),
    ("n-queries-text", _set("protocol.n_queries", "20"), "protocol.n_queries"),
    ("n-gallery-zero", _set("protocol.n_gallery", 0), "protocol.n_gallery"),
    ("fewer-captions-than-videos", _set("protocol.n_queries", 10), "protocol.n_queries"),
    ("excluded-negative", _set("protocol.excluded_failed_videos", -1), "protocol.excluded_failed_videos"),
    ("rank-beyond-gallery", _rank("raw", "t2v", 0, 999), "per_query_ranks.raw.t2v[0]"),
    ("rank-below-one", _rank("dsl", "v2t", 3, 0.5), "per_query_ranks.dsl.v2t"),
    ("rank-off-the-tie-grid", _rank("raw", "v2t", 2, 1.3), "per_query_ranks.raw.v2t[2]"),
    ("ranks-too-few", _set("per_query_ranks.raw.t2v", [1, 2, 3]), "per_query_ranks.raw.t2v"),
    ("ranks-unknown-post", _set("per_query_ranks.dls", {"t2v": [1]}), "per_query_ranks.dls"),
    ("seed-negative", _set("seed", -1), "seed"),
    ("raw-transductive", _set("transductive.raw", True), "transductive.raw"),
    ("dsl-not-transductive", _set("transductive.dsl", False), "transductive.dsl"),
    ("transductive-unknown", _set("transductive.dls", True), "transductive.dls"),
    ("random-weights-text", _set("cache.random_weights", "no"), "cache.random_weights"),
]


def _good() -> dict:
    return json.loads(GOOD.read_text())


def test_the_unchanged_fixtures_pass():
    for path in sorted(FIXTURE.parent.glob("*/*.json")):
        validate_result(json.loads(path.read_text()), str(path))


@pytest.mark.parametrize(("name", "change", "key"), SCHEMA1, ids=[c[0] for c in SCHEMA1])
def test_impossible_schema_1_files_are_refused_naming_file_and_key(tmp_path, capsys, name, change, key):
    data = _good()
    change(data)
    folder = tmp_path / "results"
    shutil.copytree(FIXTURE, folder)
    bad = folder / f"{name}.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(VtrbenchError) as err:
        load_results([folder])
    assert str(err.value).startswith(f"{bad}: {key} "), str(err.value)
    # The command line: one line, exit 2, nothing printed on stdout (refused before the table).
    code = main(["report", str(folder)])
    out, errtext = capsys.readouterr()
    assert code == 2 and out == ""
    joined = "".join(errtext.split())  # the console wraps long lines (and may break inside a path)
    assert errtext.startswith("error:") and "Traceback" not in errtext
    assert "".join(f"{name}.json: {key}".split()) in joined
    # The Python API refuses the dict too.
    with pytest.raises(VtrbenchError, match=key.replace("[", r"\[").replace(".", r"\.")):
        build_report([data])


# --------------------------------------------------------------------------- schema 2


def _scored() -> dict:
    rng = np.random.default_rng(0)
    qv = np.repeat(np.arange(6), 2)
    sim = rng.integers(0, 3, size=(12, 6)).astype(float)
    return scored_result("s", sim, qv)


def _counts(d: str, name: str, i: int, value: Any) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["per_query"]["raw"][d][name][i] = value

    return change


SCHEMA2 = [
    ("higher-negative", _counts("t2v", "higher", 0, -1), "per_query.raw.t2v.higher[0]"),
    ("tied-correct-zero", _counts("v2t", "tied_correct", 1, 0), "per_query.raw.v2t.tied_correct[1]"),
    ("count-text", _counts("t2v", "tied", 2, "1"), "per_query.raw.t2v.tied"),
    ("count-float", _counts("t2v", "tied", 2, 1.5), "per_query.raw.t2v.tied"),
    ("counts-beyond-gallery", _counts("t2v", "higher", 0, 6), "per_query.raw.t2v[0]"),
    ("counts-length", _set("per_query.raw.t2v.tied", [0] * 11), "per_query.raw.t2v"),
    ("counts-missing-key", lambda d: d["per_query"]["raw"]["t2v"].pop("tied"), "per_query.raw.t2v"),
    ("counts-unknown-post", _set("per_query.dls", {}), "per_query.dls"),
    ("recall-contradicts-counts", _set("metrics.raw.t2v.R@5", 99.0), "metrics.raw.t2v.R@5"),
    ("ranks-contradict-counts", _rank("raw", "t2v", 4, 6.0), "per_query_ranks.raw.t2v[4]"),
]


def test_the_scored_result_passes():
    validate_result(_scored(), "scored")
    assert build_report([_scored()]).blocks


@pytest.mark.parametrize(("name", "change", "key"), SCHEMA2, ids=[c[0] for c in SCHEMA2])
def test_impossible_schema_2_results_are_refused(name, change, key):
    data = copy.deepcopy(_scored())
    before = json.dumps(data)
    change(data)
    assert json.dumps(data) != before
    with pytest.raises(VtrbenchError) as err:
        validate_result(data, "r.json")
    assert str(err.value).startswith(f"r.json: {key}"), str(err.value)


def test_recall_bounds_of_tied_ranks_are_exact():
    # One query at expected rank 2: one item above (R@1 = 0) or two tied (R@1 = 1/3). Both pass, a
    # value outside [0, 33.3] does not; rank 1.5 (g = 0, t = 1) fixes R@1 = 50 exactly.
    data = _good()
    for value, ok in ((0.0, True), (100 / 3, True), (40.0, False)):
        data["per_query_ranks"]["raw"]["t2v"] = [2.0] + [1.0] * 19
        data["metrics"]["raw"]["t2v"].update(
            {
                "R@1": (value + 1900) / 20,
                "R@5": 100.0,
                "R@10": 100.0,
                "R@50": 100.0,
                "MdR": 1.0,
                "MnR": 21 / 20,
            }
        )
        data["metrics"]["raw"]["RSum"] = sum(
            data["metrics"]["raw"][d][f"R@{k}"] for d in ("t2v", "v2t") for k in (1, 5, 10)
        )
        if ok:
            validate_result(data, "f")
        else:
            with pytest.raises(VtrbenchError, match="metrics.raw.t2v.R@1 .* between 95.0000 and 96.6667"):
                validate_result(data, "f")
