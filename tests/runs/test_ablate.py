"""`vtrbench ablate` grids, the report command on their results, and `vtrbench demo` end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vtrbench.errors import VtrbenchError
from vtrbench.runs.grid import Grid, load_grid

FAST = ("--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--device", "cpu", "--quiet")


def test_grid_points_cross_camoe_axes_only_for_camoe() -> None:
    grid = Grid(
        heads=("meanp", "camoe"),
        losses=("infonce", "dsl"),
        seeds=(0, 1),
        experts=(("fusion",), ("scene", "fusion")),
        streams=("pos", "eot"),
    )
    points = grid.points()
    # meanp: 2 losses x 2 seeds; camoe: 2 losses x (2 expert sets x 2 streams) x 2 seeds
    assert len(points) == 2 * 2 + 2 * 4 * 2
    assert {tuple(p[2].items()) for p in points if p[0] == "meanp"} == {()}
    camoe = {(tuple(p[2]["experts"]), p[2]["streams"]) for p in points if p[0] == "camoe"}
    assert camoe == {
        (("fusion",), "pos"),
        (("fusion",), "eot"),
        (("fusion", "scene"), "pos"),
        (("fusion", "scene"), "eot"),
    }
    assert [p[3] for p in points[:2]] == [0, 1]  # seeds innermost


def test_grid_toml_roundtrip_and_typos(tmp_path: Path) -> None:
    grid = Grid(
        heads=("camoe",),
        losses=("dsl",),
        seeds=(0, 2),
        experts=(("action", "fusion"),),
        gate=("single", "uniform"),
        aux_weight=(0.0, 0.5),
        train={"epochs": 3, "lr": 0.001},
    )
    path = tmp_path / "grid.toml"
    path.write_text(grid.to_toml())
    assert load_grid(path) == grid
    path.write_text(grid.to_toml().replace("seeds", "sedes"))
    with pytest.raises(VtrbenchError, match="unknown key.*sedes"):
        load_grid(path)
    path.write_text(grid.to_toml().replace("gate =", "gates ="))
    with pytest.raises(VtrbenchError, match=r"unknown camoe key.*gates"):
        load_grid(path)
    path.write_text("heads = [")
    with pytest.raises(VtrbenchError, match="invalid TOML"):
        load_grid(path)


def test_ablate_runs_skips_and_continues_after_a_failure(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    argv = [
        "ablate",
        "--cache",
        str(synth_cache),
        "--results",
        str(results),
        "--heads",
        "meanp,camoe",
        "--losses",
        "infonce",
        "--seeds",
        "0,1",
        "--streams",
        "pos,eot",
        *FAST,
    ]
    r = run_cli(*argv)
    assert r.code == 0, r.err
    files = sorted(results.glob("synthetic/*.json"))
    assert len(files) == 2 + 2 * 2  # meanp x 2 seeds + camoe x 2 streams x 2 seeds
    assert "6 ran, 0 skipped" in r.err
    grids = list(results.glob("synthetic/grid-*.toml"))
    assert len(grids) == 1 and load_grid(grids[0]).streams == ("pos", "eot")
    stamp = {f: f.stat().st_mtime_ns for f in files}

    r = run_cli(*argv)
    assert r.code == 0 and "0 ran, 6 skipped" in r.err
    assert {f: f.stat().st_mtime_ns for f in files} == stamp

    # A grid point whose options are wrong (an expert that does not exist) is refused before any
    # point trains: one line naming the point, and no result of the grid is written.
    r = run_cli(*argv[: -len(FAST)], "--experts", "fusion;bogus", *FAST, "--seeds", "5")
    assert r.code == 2
    assert "bogus" in r.err and "camoe/infonce" in r.err and "Traceback" not in r.err
    assert not list(results.glob("synthetic/*.s5.json"))


def test_report_on_ablation_results(run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    r = run_cli(
        "ablate",
        "--cache",
        str(synth_cache),
        "--results",
        str(results),
        "--heads",
        "meanp,seqtransf",
        "--losses",
        "infonce,dsl",
        "--seeds",
        "0,1",
        *FAST,
    )
    assert r.code == 0, r.err
    r = run_cli(
        "report",
        str(results),
        "--format",
        "md",
        "--output",
        str(tmp_path / "t.md"),
        "--baseline",
        "meanp + infonce",
    )
    assert r.code == 0, r.err
    md = (tmp_path / "t.md").read_text()
    assert "### raw" in md and "dsl (transductive)" in md and "random CLIP weights" in md
    for row in ("meanP", "seqTransf"):
        assert f"| {row}" in md
    assert "(baseline)" in md
    r = run_cli(
        "report",
        str(results),
        "--format",
        "latex",
        "--layout",
        "pivot",
        "--rows",
        "head",
        "--cols",
        "loss",
        "--output",
        str(tmp_path / "t.tex"),
    )
    assert r.code == 0, r.err
    tex = (tmp_path / "t.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex


def test_report_refuses_mixed_caches(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    fixtures = Path(__file__).parents[1] / "fixtures" / "results" / "msrvtt"
    files = sorted(fixtures.glob("*.json"))
    other = json.loads(files[0].read_text())
    other["cache"]["fingerprint"] = "ffffffffffff"
    other["run_id"] = other["run_id"] + "x"
    other["label"] = "camoe-elsewhere"  # one configuration per table cell, even when mixing is allowed
    (tmp_path / "other.json").write_text(json.dumps(other))
    r = run_cli("report", *map(str, files[:3]), str(tmp_path / "other.json"))
    assert r.code == 2 and "fingerprint" in r.err and "--allow-mixed" in r.err
    assert (
        run_cli(
            "report",
            *map(str, files[:3]),
            str(tmp_path / "other.json"),
            "--allow-mixed",
            "--output",
            str(tmp_path / "mixed.md"),
        ).code
        == 0
    )


@pytest.mark.slow
def test_demo_end_to_end_reduced(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--output", str(out), "--videos", "16", "--epochs", "1", "--seeds", "0",
            "--heads", "meanp,camoe", "--losses", "infonce,dsl", "--quiet"]  # fmt: skip
    r = run_cli(*argv)
    assert r.code == 0, r.err
    report = (out / "report.md").read_text()
    assert "RANDOMLY INITIALISED tiny CLIP" in report and "vtrbench extract --dataset msrvtt" in report
    assert "| CAMoE" in report and "| meanP" in report and "| Zero-shot" in report
    assert len(list((out / "results" / "synthetic").glob("*.json"))) == 1 + 2 * 2
    assert (out / "site" / "index.html").is_file() and "site/index.html" in r.text
    # a second run reuses the videos, the cache and every finished result
    made = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix in (".mp4", ".h5")}
    made.update({p: p.stat().st_mtime_ns for p in (out / "results").rglob("*.json")})
    r = run_cli(*argv)
    assert r.code == 0, r.err
    assert {p: p.stat().st_mtime_ns for p in made} == made
