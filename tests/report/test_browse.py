"""Thumbnails in the cache, and ``vtrbench browse``: the page's data, its refusals, and the page itself
in headless Chromium (skipped where no Chromium is installed; .ci/run installs it when it can).

Top-k lists: result files get ``topk[post][direction]`` (top-10 gallery indices per query, test split
order) from the evaluation rewrite (schema 2). Where this branch's result files lack them, the fixture
adds them following that contract, computed from the saved checkpoints (:func:`_add_topk`).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from vtrbench import api
from vtrbench.browse import build_site, page_data
from vtrbench.browse.chromium import find_chromium
from vtrbench.cache import FeatureCache
from vtrbench.cli import main
from vtrbench.errors import CacheError, VtrbenchError

HEADS = ("meanp", "camoe")


def _add_topk(path: Path, head: api.Head, cache: Path, k: int = 10) -> None:
    result = json.loads(path.read_text())
    if result.get("topk"):
        return
    with api.open_cache(cache) as c:
        test = api.load_split(c, result["protocol"]["test_split"])
    t, v = api.embed(head, test)
    order = np.argsort(-(t @ v.t()).numpy(), axis=1, kind="stable")[:, :k]
    result["topk"] = {"raw": {"t2v": order.tolist()}}
    path.write_text(json.dumps(result))


@pytest.fixture(scope="module")
def results(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vtrbench.runs.record import load_checkpoint

    root = tmp_path_factory.mktemp("browse")
    res = root / "results"
    for head in HEADS:
        ckpt = root / f"{head}.pt"
        assert main(["train", "--cache", str(synth_cache), "--head", head, "--loss", "infonce",
                     "--epochs", "2", "--batch-size", "8", "--lr", "1e-3", "--results", str(res),
                     "--device", "cpu", "--quiet", "--save-checkpoint", str(ckpt)]) == 0  # fmt: skip
        (path,) = res.rglob(f"*.{head}.*.json")
        _add_topk(path, load_checkpoint(ckpt)[0], synth_cache)
    assert main(["eval", "--cache", str(synth_cache), "--head", "zeroshot", "--results", str(res),
                 "--device", "cpu"]) == 0  # fmt: skip
    (path,) = res.rglob("*.zeroshot.*.json")
    _add_topk(path, api.create_head("zeroshot", embed_dim=64), synth_cache)
    return res


def test_thumbnails_are_stored_and_covered_by_the_checksums(synth_cache: Path, tmp_path: Path) -> None:
    from PIL import Image

    with FeatureCache(synth_cache) as c:
        thumbs = c.thumbnails()
        n = int(c.attrs["n_videos"])
        assert "JPEG" in c.attrs["thumbnails"]
        assert "no_thumbnails" not in c.config  # default: the config hash is what it was before thumbnails
    assert thumbs is not None and len(thumbs) == n and all(thumbs)
    img = Image.open(io.BytesIO(base64.b64decode(thumbs[0])))
    assert img.format == "JPEG" and img.size == (4 * 64, 64)  # 4 frames of the 64 px synthetic video
    # one changed character inside a thumbnail is found when thumbnails are read (and by inspect --verify)
    damaged = tmp_path / "damaged.h5"
    data = bytearray(synth_cache.read_bytes())
    at = data.find(thumbs[3][100:140].encode())
    assert at > 0
    data[at + 5] = ord("A") if data[at + 5] != ord("A") else ord("B")
    damaged.write_bytes(bytes(data))
    with FeatureCache(damaged) as c:  # opening stays cheap: thumbnails are checked when read
        with pytest.raises(CacheError, match="/videos/thumbnail does not match its sha256"):
            c.thumbnails()
        with pytest.raises(CacheError, match="thumbnail"):
            c.verify()


def test_no_thumbnails_option(synth_extract_argv, synth_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.h5"
    assert main(synth_extract_argv(out, "--no-thumbnails")) == 0
    with FeatureCache(out) as c, FeatureCache(synth_cache) as full:
        assert c.thumbnails() is None and "thumbnail" not in c.file["videos"]
        assert c.config["no_thumbnails"] is True and c.config_hash != full.config_hash
        assert "thumbnails" not in c.attrs
        # the features are the same: thumbnails change nothing else
        rows = np.arange(int(c.attrs["n_videos"]))
        assert np.array_equal(c.read_rows("videos", "frames", rows), full.read_rows("videos", "frames", rows))


def test_page_data_follows_the_report_and_the_contract(
    results: Path, synth_cache: Path, tmp_path: Path
) -> None:
    from vtrbench.report import build_report, load_results, render_markdown

    summary = build_site([results], synth_cache, tmp_path / "site")
    page = summary.page
    assert page == tmp_path / "site" / "index.html" and list(page.parent.iterdir()) == [page]
    text = page.read_text()
    # nothing that could be fetched: the only URLs are data: URIs, and the CSP forbids the rest
    assert "http://" not in text.replace("http://www.w3.org/", "") and "https://" not in text
    assert "default-src 'none'" in text
    data = page_data(page)
    names = {s["name"] for s in data["systems"]}
    assert len(names) == 3 and {"meanP + InfoNCE", "CAMoE + InfoNCE"} <= names, names
    by_id = {s["id"]: s for s in data["systems"]}
    # default pair: the best by RSum against the meanP baseline
    loaded = load_results([results])
    report = build_report(loaded, layout="paper", baseline="meanp + infonce")
    assert data["b"] == "meanp + infonce"
    rsum = {f"{r['label']} + {r['loss']}": r["metrics"]["raw"]["RSum"] for r in loaded}
    assert rsum[data["a"]] == max(rsum.values())
    # the tables are report's own cells: every Markdown row's numbers appear in the page's rows
    md = render_markdown(report)
    for table in data["tables"]:
        for row in table["rows"]:
            for cell in row[table["left"] + 1 :]:
                assert cell.split(" [")[0].replace("†", "") in md.replace("**", "")
    n = len(data["captions"])
    assert n == 12 and len(data["gt"]) == n and all(0 <= g < len(data["videos"]) for g in data["gt"])
    assert len(data["thumbs"]) == len(data["videos"]) and all(data["thumbs"])
    camoe = next(s for s in data["systems"] if s["id"].startswith("camoe"))
    assert camoe["gate"] is not None and len(camoe["gate"]["fusion"]) == n
    assert all(len(row) == min(5, len(data["videos"])) for row in camoe["topk"])
    meanp = by_id["meanp + infonce"]
    # a query ranked 1st by the result has its own video first in the top-k (no ties at rank 1)
    for q, r in enumerate(meanp["ranks"]):
        if r == 1:
            assert meanp["topk"][q][0] == data["gt"][q]
    assert data["gate_summary"] and data["gate_summary"][0]["system"] == camoe["name"]
    # each top-k item's score: the result file's own (lowest seed), best first, per query
    stored = next(r for r in loaded if r["label"] == "meanp" and r["loss"] == "infonce")
    assert meanp["topk_seed"] == stored["seed"]
    assert meanp["scores"] == [row[:5] for row in stored["topk_scores"]["raw"]["t2v"]]
    # wrong items tied with the ground truth, per query (the lowest seed's counts), both directions
    assert meanp["tied"] == stored["per_query"]["raw"]["t2v"]["tied"]
    assert meanp["tied_v2t"] == stored["per_query"]["raw"]["v2t"]["tied"]
    # v2t: per test video, its seed-averaged rank and top-5 captions with their scores
    assert meanp["ranks_v2t"] == [round(x, 2) for x in stored["per_query_ranks"]["raw"]["v2t"]]
    assert meanp["topk_v2t"] == [row[:5] for row in stored["topk"]["raw"]["v2t"]]
    assert meanp["scores_v2t"] == [row[:5] for row in stored["topk_scores"]["raw"]["v2t"]]
    assert all(len(row) == 5 and all(0 <= c < n for c in row) for row in meanp["topk_v2t"])
    assert all(
        len(sc) == len(tk) and sc == sorted(sc, reverse=True)
        for sc, tk in zip(camoe["scores"], camoe["topk"], strict=True)
    )
    # training curves: each trained system's history as stored (one run per seed), none for zero-shot
    (run,) = meanp["history"]
    assert run["seed"] == stored["seed"] and run["epoch"] == [h["epoch"] for h in stored["history"]]
    assert run["loss"] == [h["loss"] for h in stored["history"]]
    assert run["lr"] == [h["lr"] for h in stored["history"]] and "val" not in run  # no --val-fraction
    assert by_id["zeroshot + none"]["history"] is None
    assert data["marks"] == []  # one configuration per head: short names need no footnote
    assert [t["diff"] for t in data["tables"]] == [True] * 3  # the Δ column, last


def test_browse_refusals_are_one_line(results: Path, synth_cache: Path, run_cli, tmp_path: Path) -> None:
    def refused(*argv, match: str) -> None:
        res = run_cli("browse", *argv)
        assert res.code == 2, res.text
        lines = [x for x in res.text.strip().splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], res.text

    site = tmp_path / "site"
    refused(results, "--cache", synth_cache, "--output", site, "--a", "camo + dsl", match="is not a system")
    mixed = tmp_path / "mixed"
    shutil.copytree(results, mixed)
    one = sorted(mixed.rglob("*.meanp.*.json"))[0]
    r = json.loads(one.read_text())
    r["cache"]["fingerprint"] = "0" * 16
    r["cache"]["config_hash"] = "0" * 16
    one.write_text(json.dumps(r))
    refused(mixed, "--cache", synth_cache, "--output", site, match="cache")
    other = tmp_path / "other.h5"
    shutil.copy(synth_cache, other)
    with h5py.File(other, "r+") as f:
        f.attrs["config_hash"] = "f" * 16
    refused(results, "--cache", other, "--output", site, match="the results were computed on cache")
    (tmp_path / "file").write_text("x")
    refused(results, "--cache", synth_cache, "--output", tmp_path / "file", match="is a file, not a folder")
    res = run_cli("browse", results, "--cache", synth_cache, "--output", site)
    assert res.code == 0 and "wrote" in res.text and (site / "index.html").is_file()


def test_old_results_and_caches_without_thumbnails_still_browse(
    results: Path, synth_extract_argv, tmp_path: Path
) -> None:
    """Schema-1 files without topk/per_query_gate, and a cache without thumbnails: the page still works."""
    old = tmp_path / "old"
    shutil.copytree(results, old)
    for p in old.rglob("*.json"):
        r = json.loads(p.read_text())
        # a schema-1 file: no topk, tie counts or per-query gates (schema 2 requires the first two)
        for key in ("topk", "topk_scores", "per_query", "per_query_gate"):
            r.pop(key, None)
        r["schema"] = 1
        p.write_text(json.dumps(r))
    data = page_data(build_site([old], _cache_for(results), tmp_path / "site").page)
    assert all(s["topk"] is None and s["scores"] is None and s["gate"] is None for s in data["systems"])
    assert all(s["topk_v2t"] is None and s["scores_v2t"] is None and s["ranks_v2t"] for s in data["systems"])
    assert all(s["tied"] is None and s["tied_v2t"] is None for s in data["systems"])
    assert data["gate_summary"] == []


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _cache_for(results: Path) -> Path:
    r = json.loads(next(results.rglob("*.json")).read_text())
    return Path(r["cache"]["path"])


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (apt-get install chromium)")
def test_page_in_headless_chromium(results: Path, synth_cache: Path, tmp_path: Path) -> None:
    """The real page in a real browser: table, sorting, drill-down, thumbnails decoded, filter,
    no script errors and no blocked request (the CSP reports any attempt to leave the file)."""
    from vtrbench.browse.chromium import screenshot, selftest

    page = build_site([results], synth_cache, tmp_path / "site").page
    got = selftest(page, width=1300)
    assert got["errors"] == [] and got["csp_violations"] == [], got
    # at the README screenshot's width every table fits: no column (Δ last) cut or hidden behind a scroll
    assert got["window_width"] == 1300
    assert all(w["overflow"] == "auto" and w["scroll"] <= w["client"] for w in got["wraps"]), got["wraps"]
    assert not got["caret"]
    # curves of the two trained systems (one seed each, 2 epochs): one line each, one colour each
    curves = got["curves"]
    assert curves["panels"] == ["loss", "lr", "logit_scale"]  # no validation split: no val panel
    assert curves["polylines"] == {"loss": 2, "lr": 2, "logit_scale": 2} and curves["colors"] == 2
    assert curves["points"] == 3 * 2 * 2 and curves["points_inside"]
    expected = ["sec-curves", "sec-gates"] + (["sec-figures"] if _has_matplotlib() else [])
    assert got["sections"] == expected and not got["single"] and not got["sysB_hidden"]
    assert all(" beats " in h for h in got["headings"]) and got["gate_lines"] > 0
    assert got["tables"] == 3 and got["table_rows"] == 3
    assert got["sorted_desc"] and got["sorted_asc"] and got["sort_column"].startswith("t2v R@1")
    assert got["cards_a"] + got["cards_b"] > 0
    assert got["scores_shown"] > 0  # every top-k item of a card shows its score
    # v2t: video queries with their top-5 captions and scores, own captions marked
    assert got["cards_v2t"] > 0 and got["scores_v2t"] > 0 and got["v2t_own_captions"] > 0
    assert got["images"] > 0 and got["images_decoded"] == got["images"] and got["images_not_data"] == 0
    assert got["filter_ok"] and got["filter_cards"] > 0
    assert got["figure"] == _has_matplotlib()  # report's figure, inline SVG
    shot = screenshot(page, tmp_path / "browse.png")
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def variants(results: Path, synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results plus a second CAMoE configuration (2 seeds, validation split): its options are too
    long for the name column, so report names the two CAMoE rows ``CAMoE^a`` and ``CAMoE^b``."""
    res = tmp_path_factory.mktemp("variants") / "results"
    shutil.copytree(results, res)
    assert main(["train", "--cache", str(synth_cache), "--head", "camoe", "--experts", "fusion,scene",
                 "--gate", "uniform", "--loss", "infonce", "--epochs", "3", "--batch-size", "8", "--lr",
                 "1e-3", "--val-fraction", "0.25", "--seed", "0,1", "--results", str(res), "--device",
                 "cpu", "--quiet"]) == 0  # fmt: skip
    return res


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (apt-get install chromium)")
def test_marks_seeds_and_a_narrow_window(variants: Path, synth_cache: Path, tmp_path: Path) -> None:
    """Footnote marks are superscripts (never a literal ``^a``), seeds overlay in their system's colour,
    validation curves follow the chosen metric, and a window too narrow for a table scrolls it."""
    from vtrbench.browse.chromium import selftest

    page = build_site([variants], synth_cache, tmp_path / "site").page
    data = page_data(page)
    assert sorted(m[1:] for m in data["marks"]) == [["CAMoE", "a"], ["CAMoE", "b"]]
    assert any(row[0] == "CAMoE^a" for row in data["tables"][0]["rows"])  # report's plain cell text
    if _has_matplotlib():  # report's figure, inline: its legend sets the mark as a superscript too
        text = page.read_text()
        assert "CAMoE^a + InfoNCE -->" not in text and "CAMoE$^{\\mathrm{a}}$ + InfoNCE -->" in text
    got = selftest(page, width=700)
    assert got["errors"] == [] and got["csp_violations"] == [], got
    assert not got["caret"] and got["sups"] >= 2 * 3 + 2  # two rows in each of 3 tables, two notes
    # too narrow: each table scrolls inside its box (the Δ column stays reachable)
    assert all(w["overflow"] == "auto" and w["scroll"] > w["client"] for w in got["wraps"]), got["wraps"]
    curves = got["curves"]
    # meanP, CAMoE^a (one seed each) and CAMoE^b (seeds 0 and 1): 4 lines, 3 colours; only CAMoE^b validated
    assert curves["series"]["loss"] == 4 and curves["colors"] == 3 and curves["points_inside"]
    assert curves["polylines"]["val"] == 2
    assert got["val_keys"] == ["objective", "RSum", "t2v/R@1", "v2t/R@1"]
    assert got["curves_by_val"] == {k: 2 for k in got["val_keys"]}


def test_one_system_lists_its_own_queries(results: Path, synth_cache: Path, run_cli, tmp_path: Path) -> None:
    """Zero-shot alone: no "Zero-shot vs Zero-shot", no empty curve or gate sections."""
    alone = tmp_path / "alone"
    alone.mkdir()
    (src,) = results.rglob("*.zeroshot.*.json")
    shutil.copy(src, alone / src.name)
    res = run_cli("browse", alone, "--cache", synth_cache, "--output", tmp_path / "site")
    assert res.code == 0 and "own queries" in res.text and " vs " not in res.text, res.text
    page = tmp_path / "site" / "index.html"
    data = page_data(page)
    assert len(data["systems"]) == 1 and data["a"] == data["b"] == "zeroshot + none"
    text = page.read_text()
    assert 'id="sec-curves"' not in text and 'id="sec-gates"' not in text and 'id="winA"' in text
    if find_chromium() is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    from vtrbench.browse.chromium import selftest

    got = selftest(page)
    assert got["errors"] == [] and got["csp_violations"] == [], got
    assert got["single"] and got["sysB_hidden"] and got["curves"]["panels"] == []
    ranks = data["systems"][0]["ranks"]
    misses, hits = sum(r > 1 for r in ranks), sum(r <= 1 for r in ranks)
    assert got["headings"] == [
        f"Zero-shot + — misses, worst first ({misses})",
        f"Zero-shot + — ranks first ({hits})",
    ]
    assert got["cards_a"] == min(misses, 20) and got["cards_b"] == min(hits, 20)
    assert "ranks the ground truth first on" in got["summary"] and "beats" not in got["summary"]
    assert got["images"] > 0 and got["images_decoded"] == got["images"] and got["scores_shown"] > 0


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (apt-get install chromium)")
def test_one_camoe_system_with_hostile_histories(results: Path, synth_cache: Path, tmp_path: Path) -> None:
    """CAMoE alone, three seeds whose histories hold the extremes a result file may hold (±1e308, a
    negative loss, the smallest subnormal, one epoch only): the page draws inside its axes, no error,
    and the CAMoE gates show per query."""
    from vtrbench.browse.chromium import selftest

    alone = tmp_path / "alone"
    alone.mkdir()
    (src,) = results.rglob("*.camoe.*.json")
    base = json.loads(src.read_text())
    hostile = {
        1: [{"epoch": 1, "loss": 1e308, "lr": 1e-300, "logit_scale": 5e-324},
            {"epoch": 2, "loss": -1e308, "lr": 0.0, "logit_scale": 1e308}],
        2: [{"epoch": 1, "loss": -3.5, "lr": 1e-3, "logit_scale": 100.0}],  # one epoch: a dot
    }  # fmt: skip
    for seed in (0, 1, 2):
        r = json.loads(json.dumps(base))
        r["seed"], r["run_id"] = seed, base["run_id"].rsplit(".s", 1)[0] + f".s{seed}"
        if seed in hostile:
            r["history"] = [{**h, "seconds": 0.0, "pairs_per_s": 0.0} for h in hostile[seed]]
        (alone / f"{r['run_id']}.json").write_text(json.dumps(r))
    page = build_site([alone], synth_cache, tmp_path / "site").page
    got = selftest(page)
    assert got["errors"] == [] and got["csp_violations"] == [], got
    curves = got["curves"]
    assert curves["series"] == {"loss": 3, "lr": 3, "logit_scale": 3} and curves["colors"] == 1
    assert curves["polylines"] == {"loss": 2, "lr": 2, "logit_scale": 2}
    assert curves["dots"] == {"loss": 1, "lr": 1, "logit_scale": 1} and curves["points_inside"]
    assert got["single"] and got["sections"][:2] == ["sec-curves", "sec-gates"] and got["gate_lines"] > 0


def test_api_search_refuses_before_loading_clip(synth_cache: Path) -> None:
    with pytest.raises(VtrbenchError, match="the query is empty"):
        api.search(synth_cache, "")
