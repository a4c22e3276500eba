"""``report --baseline`` and ``browse --baseline`` on hostile inputs (issue 28): a result file without
its head or loss is refused naming the file and the key (it reached the label code as a NaN), and a
baseline that names no system is refused listing the systems, before any page is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def results(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import invoke_cli

    res = tmp_path_factory.mktemp("baseline") / "results"
    train = ["train", "--cache", synth_cache, "--head", "meanp", "--loss", "infonce", "--epochs", 1,
             "--batch-size", 8, "--results", res, "--device", "cpu", "--quiet", "--seed", "0,1"]  # fmt: skip
    r = invoke_cli(*train)
    assert r.code == 0, r.text
    return res


@pytest.mark.parametrize("key", ["head", "loss"])
@pytest.mark.parametrize("baseline", [None, "xpool + infonce"])
def test_a_result_without_its_head_or_loss_is_one_line_naming_file_and_key(
    run_cli: Any, results: Path, tmp_path: Path, key: str, baseline: str | None
) -> None:
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    broken = sorted(copy.rglob("*.json"))[0]
    data = json.loads(broken.read_text())
    del data[key]
    broken.write_text(json.dumps(data))
    r = run_cli("report", copy, *(("--baseline", baseline) if baseline else ()))
    assert r.code != 0 and "Traceback" not in r.text, r.text
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.err
    assert str(broken) in lines[0] and f"'{key}'" in lines[0], lines[0]


def test_a_result_dict_without_head_is_refused_by_the_api_report() -> None:
    from vtrbench.errors import VtrbenchError
    from vtrbench.report.validate import validate_result

    with pytest.raises(VtrbenchError, match=r"^r0: 'head' is missing"):
        validate_result({"run_id": "x", "loss": "dsl", "seed": 0, "metrics": {}}, "r0")


def test_browse_refuses_a_baseline_that_is_no_system(
    run_cli: Any, results: Path, synth_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "page"
    r = run_cli("browse", results, "--cache", synth_cache, "--output", out, "--baseline", "nope")
    lines = r.err.strip().splitlines()
    assert r.code != 0 and len(lines) == 1, r.text
    assert "--baseline 'nope'" in lines[0] and "meanP + InfoNCE" in lines[0], lines[0]
    assert not out.exists()
    # the shown name, in any case, is a system: the page is written with it as the baseline
    r = run_cli("browse", results, "--cache", synth_cache, "--output", out, "--baseline", "MEANP + infonce")
    assert r.code == 0 and (out / "index.html").is_file(), r.text
