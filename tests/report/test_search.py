"""``vtrbench search`` / ``api.search``: free text encoded with the cache's own CLIP ranks like ``eval``.

The tolerance. A cached caption's token features were encoded in a batch of captions and stored as
float16; the same caption typed as a query is encoded alone and rounded to float16 the same way. The
float32 features differ by matmul rounding only (~1e-7 relative), so after float16 rounding each
value is identical or one float16 step (2**-11 relative) apart. A relative change of at most 2**-11
in a vector moves the cosine of two unit vectors by at most ~2 * 2**-11 ~ 1e-3: :data:`SCORE_TOL`.
The measured discrepancy (0 here) must stay within SCORE_TOL; ranks are then compared exactly where
no other video scores within it (at least 1e-6: float32 summation order) of the caption's own
video, and otherwise must lie in the range those near-ties allow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from vtrbench import api
from vtrbench.cli import main
from vtrbench.errors import VtrbenchError
from vtrbench.results import read_result

SCORE_TOL = 1e-3
FLOAT32_WINDOW = 1e-6


@pytest.fixture(scope="module")
def trained(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A zeroshot eval result, and a CAMoE trained 2 epochs with its checkpoint and result."""
    root = tmp_path_factory.mktemp("search")
    assert main(["eval", "--cache", str(synth_cache), "--head", "zeroshot", "--results", str(root / "zs"),
                 "--device", "cpu"]) == 0  # fmt: skip
    ckpt = root / "camoe.pt"
    assert main(["train", "--cache", str(synth_cache), "--head", "camoe", "--loss", "infonce",
                 "--epochs", "2", "--batch-size", "8", "--lr", "1e-3", "--results", str(root / "camoe"),
                 "--device", "cpu", "--quiet", "--save-checkpoint", str(ckpt)]) == 0  # fmt: skip
    (zs,) = sorted((root / "zs").rglob("*.json"))
    (cm,) = sorted((root / "camoe").rglob("*.json"))
    return {"zeroshot": zs, "camoe": cm, "ckpt": ckpt, "root": root}


def _test_captions(cache: Path, synth_dir: Path) -> tuple[list[str], list[tuple[str, ...]], np.ndarray]:
    """Test-split captions in the result file's query order, their dataset roles, their video rows."""
    from vtrbench.datasets import load_dataset

    with api.open_cache(cache) as c:
        split = api.load_split(c, "test")
        captions = c.read_strings("texts", "caption", split.text_rows)
        video_rows = c.read_rows("texts", "video", split.text_rows)
    index = load_dataset("synthetic", synth_dir, None)
    roles = [index.texts[int(r)].roles for r in split.text_rows]
    return captions, roles, video_rows


def _check_against_result(outcome, result: dict, video_rows: np.ndarray, head, cache: Path) -> list[int]:
    """Scores equal the head's scores of the cached captions; ranks equal the result's. Returns per
    caption how many other videos score within SCORE_TOL of its own (0: rank compared exactly)."""
    with api.open_cache(cache) as c:
        test = api.load_split(c, "test")
    if head.pairwise:  # scored block by block from per-item states, as evaluation does
        from vtrbench.search import _score

        cached = _score(head, test, "cpu").numpy()
    else:
        t, v = api.embed(head, test)
        cached = (t @ v.t()).numpy()
    ranks = result["per_query_ranks"]["raw"]["t2v"]
    # the measured discrepancy (bounded by SCORE_TOL; 0 on this data: float16 rounding absorbs the
    # batch-shape differences) is the window within which another video counts as a near-tie
    window = max(float(np.abs(r.scores - cached[i]).max()) for i, r in enumerate(outcome.results))
    assert window <= SCORE_TOL
    # evaluation may sum the same dot products in another order (blocks, one scoring pass): scores
    # that agree to float32 resolution (~1e-7 relative) can tie there and not here, or the reverse
    window = max(window, FLOAT32_WINDOW)
    near_ties = []
    for i, r in enumerate(outcome.results):
        assert len(r.scores) == test.n_videos
        own = int(np.flatnonzero(test.video_rows == video_rows[i])[0])
        s, others = r.scores[own], np.delete(r.scores, own)
        above, near = int((others > s + window).sum()), int((others >= s - window).sum())
        assert above + 1 <= ranks[i] <= near + 1, (i, r.query, ranks[i], above, near)
        near_ties.append(near - above)
        if above == near:
            assert ranks[i] == above + 1
            # the video's position in the printed ranking is that rank
            assert [h.row for h in r.hits].index(int(video_rows[i])) + 1 == ranks[i]
    return near_ties


def test_test_captions_as_free_text_rank_where_eval_says(synth_cache: Path, synth_dir: Path, trained) -> None:
    from vtrbench.search import search

    captions, _, video_rows = _test_captions(synth_cache, synth_dir)
    out = search(synth_cache, captions, split="test", k=100)
    result = read_result(trained["zeroshot"])
    head = api.create_head("zeroshot", embed_dim=64)
    near_ties = _check_against_result(out, result, video_rows, head, synth_cache)
    # exact ties only: zeroshot mean-pools frames, so a video and its time-reversed twin may score
    # exactly alike (the synthetic data's point); the result file counts them as ties too
    assert near_ties.count(0) + near_ties.count(1) == len(captions), near_ties
    assert out.head == "zeroshot" and out.n_gallery == result["protocol"]["n_gallery"]


def test_camoe_checkpoint_scores_and_gates_equal_eval(synth_cache: Path, synth_dir: Path, trained) -> None:
    """CAMoE reads the noun/verb streams: with the roles the dataset gave extraction, the query's
    streams, scores, ranks and gate weights are the cached caption's."""
    from vtrbench.runs.record import load_checkpoint
    from vtrbench.search import search

    captions, roles, video_rows = _test_captions(synth_cache, synth_dir)
    out = search(synth_cache, captions, split="test", k=100, checkpoint=trained["ckpt"], roles=roles)
    result = read_result(trained["camoe"])
    head, _ = load_checkpoint(trained["ckpt"])
    near_ties = _check_against_result(out, result, video_rows, head, synth_cache)
    # the temporal experts separate the twins: most ranks are compared exactly (not vacuous)
    assert near_ties.count(0) >= len(captions) // 2, near_ties
    gates = result["per_query_gate"]
    assert set(gates) == set(out.results[0].gate)
    for i, r in enumerate(out.results):
        assert sum(r.gate.values()) == pytest.approx(1.0, abs=1e-5)
        for e, w in r.gate.items():
            assert w == pytest.approx(gates[e][i], abs=SCORE_TOL)
    # free text goes through the cache's tagger instead: it may find other streams (here pattern
    # tags "moves" as a noun), but each query's streams are reported
    tagged = search(synth_cache, captions[:2], split="test", checkpoint=trained["ckpt"])
    assert all(r.verb_source in ("tagged", "rule", "sentence") for r in tagged.results)


def test_pairwise_head_checkpoint_ranks_where_eval_says(
    synth_cache: Path, synth_dir: Path, trained, tmp_path: Path
) -> None:
    """X-Pool scores (caption, video) pairs jointly: search takes the pairwise path."""
    from vtrbench.runs.record import load_checkpoint
    from vtrbench.search import search

    ckpt = tmp_path / "xpool.pt"
    assert main(["train", "--cache", str(synth_cache), "--head", "xpool", "--loss", "infonce",
                 "--epochs", "1", "--batch-size", "8", "--results", str(tmp_path / "r"), "--device", "cpu",
                 "--quiet", "--save-checkpoint", str(ckpt)]) == 0  # fmt: skip
    (path,) = (tmp_path / "r").rglob("*.json")
    captions, roles, video_rows = _test_captions(synth_cache, synth_dir)
    out = search(synth_cache, captions, split="test", k=100, checkpoint=ckpt, roles=roles)
    head, _ = load_checkpoint(ckpt)
    assert head.pairwise
    near_ties = _check_against_result(out, read_result(path), video_rows, head, synth_cache)
    # X-Pool's text-conditioned pooling is order-blind: a video's time-reversed twin scores the same
    # (to float32 noise) and is the one near-tie; every other video is ranked exactly
    assert max(near_ties) <= 1, near_ties


def test_cli_table_json_and_queries_file(synth_cache: Path, trained, run_cli, tmp_path: Path) -> None:
    res = run_cli("search", "--cache", synth_cache, "--checkpoint", trained["ckpt"], "a red circle moves up",
                  "-k", "3")  # fmt: skip
    assert res.code == 0, res.text
    assert "rank" in res.out and "syn000" in res.out and "gate: action" in res.out
    qfile = tmp_path / "q.txt"
    qfile.write_text("# two queries\na red circle moves up\n\na blue square moves left\n")
    res = run_cli("search", "--cache", synth_cache, "--queries", qfile, "-k", "2", "--json")
    assert res.code == 0, res.text
    rows = json.loads(res.out)
    assert [(r["query"], r["rank"]) for r in rows] == [
        ("a red circle moves up", 1), ("a red circle moves up", 2),
        ("a blue square moves left", 1), ("a blue square moves left", 2),
    ]  # fmt: skip
    assert rows[0]["score"] >= rows[1]["score"] and rows[0]["path"].endswith(".mp4")
    hits = api.search(synth_cache, "a red circle moves up", k=2)
    assert [(h["video"], h["score"]) for h in hits] == [(r["video"], r["score"]) for r in rows[:2]]
    long = run_cli("search", "--cache", synth_cache, " ".join(["red"] * 40), "-k", "1", "--json")
    assert long.code == 0 and json.loads(long.out)[0]["truncated"] is True


def test_bad_input_is_one_line(synth_cache: Path, trained, run_cli, tmp_path: Path) -> None:
    def refused(*argv, match: str) -> None:
        res = run_cli("search", "--cache", synth_cache, *argv)
        assert res.code == 2, res.text
        lines = [x for x in res.text.strip().splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], res.text

    refused("   ", match="the query is empty")
    refused(match="no query given")
    refused("x " * 5000, match="at most 1000 are accepted")
    refused("a query", "--split", "tset", match="unknown split 'tset'")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    refused("--queries", empty, match="holds no query")
    # a checkpoint trained on another cache
    other = torch.load(trained["ckpt"], map_location="cpu", weights_only=True)
    other["config"]["cache_hash"] = "0123456789abcdef"
    torch.save(other, tmp_path / "other.pt")
    refused(
        "a query",
        "--checkpoint",
        tmp_path / "other.pt",
        match="trained on another cache (config hash 01234567)",
    )


def test_text_tower_must_be_found_and_must_match(synth_cache: Path, run_cli, tmp_path: Path) -> None:
    """A cache whose recorded checkpoint file moved is refused naming it; other weights are refused."""
    import open_clip

    moved = tmp_path / "moved.h5"
    shutil.copy(synth_cache, moved)
    with h5py.File(moved, "r+") as f:  # attributes are not part of the content digest
        f.attrs["pretrained"] = "/gone/tiny-clip.pt"
        f.attrs["random_weights"] = False
    res = run_cli("search", "--cache", moved, "a query")
    assert res.code == 2 and "/gone/tiny-clip.pt is not there" in res.text and "--clip-weights" in res.text
    # the same random weights, given explicitly: accepted
    assert run_cli("search", "--cache", moved, "--clip-weights", "none", "a query").code == 0
    # weights of the same architecture but another initialisation: refused before ranking
    from vtrbench.extract.encode import _register_configs

    _register_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = open_clip.create_model("vtrbench-tiny", pretrained=None)
    torch.save(model.state_dict(), tmp_path / "other.pt")
    res = run_cli("search", "--cache", moved, "--clip-weights", tmp_path / "other.pt", "a query")
    assert res.code == 2 and "do not reproduce the caption features" in res.text, res.text


# ---------------------------------------------------------------- what a reader needs to judge a hit


@pytest.fixture(scope="module", autouse=True)
def kept_towers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kept text towers go to a folder of this module's (never the user's ~/.cache)."""
    folder = tmp_path_factory.mktemp("towers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VTRBENCH_CACHE_DIR", str(folder))
        yield folder


def _cached_captions(cache: Path) -> dict[int, list[str]]:
    """Each video row's captions, read straight from the file (not through vtrbench.search)."""
    with h5py.File(cache, "r") as f:
        owner = f["texts"]["video"][:]
        captions = f["texts"]["caption"].asstr()[:]
    out: dict[int, list[str]] = {}
    for row, caption in zip(owner, captions, strict=True):
        out.setdefault(int(row), []).append(str(caption))
    return out


def test_every_hit_carries_its_cached_captions(synth_cache: Path, run_cli) -> None:
    truth = _cached_captions(synth_cache)
    res = run_cli("search", "--cache", synth_cache, "a red circle moves up", "-k", "12", "--json")
    assert res.code == 0, res.text
    rows = json.loads(res.out)
    with h5py.File(synth_cache, "r") as f:
        ids = list(f["videos"]["id"].asstr()[:])
    assert len(rows) == 12 and all(r["captions"] == truth[ids.index(r["video"])] for r in rows)
    assert all(len(r["captions"]) == 3 for r in rows)  # the fixture has 3 captions per video
    table = run_cli("search", "--cache", synth_cache, "a red circle moves up", "-k", "2", "--captions", "1")
    assert table.code == 0, table.text
    first = rows[0]
    assert f"“{first['captions'][0]}”" in table.out and f"“{first['captions'][1]}”" not in table.out
    assert table.out.count("(+2 more of 3 captions)") == 2
    none = run_cli("search", "--cache", synth_cache, "a red circle moves up", "-k", "2", "--captions", "0")
    assert none.code == 0 and "“" not in none.out and "more of" not in none.out


def test_random_weights_are_said_in_every_layout(synth_cache: Path, run_cli) -> None:
    for extra in ((), ("--json",)):
        res = run_cli("search", "--cache", synth_cache, "a red circle", "-k", "1", *extra)
        assert res.code == 0 and "RANDOM CLIP weights" in res.err and "RANDOM" not in res.out, res.text
    if extra:
        json.loads(res.out)  # stdout stays pure JSON


def test_long_paths_are_never_cut(synth_cache: Path, tmp_path: Path) -> None:
    """40 columns, output not a terminal: each hit's full path on its line (rich cut them at 80)."""
    import contextlib
    import io
    import os

    from vtrbench.cli import main

    copy = tmp_path / "c.h5"
    shutil.copy(synth_cache, copy)
    with h5py.File(copy, "r+") as f:
        paths = f["videos"]["path"].asstr()[:]
        long = [f"/data/{'very-long-folder-name/' * 12}{Path(p).name}" for p in paths]
        del f["videos"]["path"]
        f["videos"].create_dataset("path", data=np.array(long, dtype=object), dtype=h5py.string_dtype())
    out, err = io.StringIO(), io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "40"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["search", "--cache", str(copy), "a red circle", "-k", "3"])
    finally:
        os.environ.pop("COLUMNS") if old is None else os.environ.__setitem__("COLUMNS", old)
    assert code == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    hit_lines = [line for line in lines if "/data/very-long-folder-name/" in line]
    assert len(hit_lines) == 3 and all(any(line.endswith(p) for p in long) for line in hit_lines), lines


# ---------------------------------------------------------------- the kept text tower (no open_clip import)


def test_a_kept_text_tower_scores_exactly_like_open_clip(
    synth_cache: Path, kept_towers: Path, monkeypatch
) -> None:
    from vtrbench.search import search

    queries = ["a red circle moves up", "a blue square", " ".join(["green"] * 40)]
    monkeypatch.setenv("VTRBENCH_CACHE_DIR", "off")
    plain = search(synth_cache, queries, k=3)
    assert plain.text_tower == "open_clip" and plain.note == ""
    monkeypatch.setenv("VTRBENCH_CACHE_DIR", str(kept_towers / "exact"))
    first = search(synth_cache, queries, k=3)
    assert first.text_tower == "open_clip" and first.note.startswith("kept the text tower in ")
    (kept,) = (kept_towers / "exact" / "text-towers").glob("*.pt")
    again = search(synth_cache, queries, k=3)
    assert again.text_tower == f"kept copy {kept}" and again.note == ""
    for a, b in zip(plain.results, again.results, strict=True):
        assert np.array_equal(a.scores, b.scores) and a.n_tokens == b.n_tokens and a.truncated == b.truncated


def test_a_damaged_or_foreign_kept_tower_is_replaced(
    synth_cache: Path, kept_towers: Path, monkeypatch
) -> None:
    from vtrbench.extract import text_tower
    from vtrbench.extract.encode import _register_configs, load_clip
    from vtrbench.search import search

    monkeypatch.setenv("VTRBENCH_CACHE_DIR", str(kept_towers / "bad"))
    path = text_tower.tower_path("vtrbench-tiny", "none")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage" * 100)
    out = search(synth_cache, ["a red circle"], k=1)
    assert out.text_tower == "open_clip" and "kept the text tower" in out.note
    assert search(synth_cache, ["a red circle"], k=1).text_tower.startswith("kept copy")
    # other weights under the cache's key (a checkpoint file replaced in place): refused by the
    # cache check, rebuilt with open_clip and replaced
    import warnings

    import open_clip

    _register_configs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = load_clip("vtrbench-tiny", "none")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        other.model.load_state_dict(open_clip.create_model("vtrbench-tiny", pretrained=None).state_dict())
    assert text_tower.save_tower(other, path, [], 32) is None
    out = search(synth_cache, ["a red circle"], k=1)
    assert out.text_tower == "open_clip" and "kept the text tower" in out.note
    assert search(synth_cache, ["a red circle"], k=1).text_tower.startswith("kept copy")


def test_only_a_plain_text_tower_is_kept(tmp_path: Path) -> None:
    import warnings

    from vtrbench.extract.encode import load_clip
    from vtrbench.extract.text_tower import save_tower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip("vtrbench-tiny", "none")
    block = clip.model.transformer.resblocks[0]
    block.ls_1 = torch.nn.Linear(1, 1)  # stands for layer scale: no longer open_clip's plain block
    path = tmp_path / "t.pt"
    assert "not a plain CLIP text tower" in save_tower(clip, path, [], 32)
    assert not path.exists()


def test_the_kept_tower_path_imports_neither_open_clip_nor_the_tagger(
    synth_cache: Path, kept_towers: Path
) -> None:
    """A fresh process searching with a kept copy: the two imports that made search slow stay out."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "VTRBENCH_CACHE_DIR": str(kept_towers / "fresh")}
    child = (
        "import sys, json\n"
        "from vtrbench.cli import main\n"
        f"code = main(['search', '--cache', {str(synth_cache)!r}, 'a red circle', '--json'])\n"
        "slow = ('open_clip', 'textblob', 'torchvision')\n"
        "print('MODULES', json.dumps([m for m in slow if m in sys.modules]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    runs = [subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, cwd=root,
                           timeout=300) for _ in range(2)]  # fmt: skip
    loaded = [json.loads(r.stdout.rsplit("MODULES", 1)[1]) for r in runs]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert "open_clip" in loaded[0]  # the first search builds the tower with open_clip and keeps it
    assert loaded[1] == []
    hits = [json.loads(r.stdout.rsplit("MODULES", 1)[0]) for r in runs]
    assert hits[0] == hits[1]


def test_off_keeps_nothing(synth_cache: Path, tmp_path: Path, monkeypatch) -> None:
    from vtrbench.search import search

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("VTRBENCH_CACHE_DIR", "off")
    before = synth_cache.read_bytes()
    assert search(synth_cache, ["a red circle"], k=1).text_tower == "open_clip"
    assert not (tmp_path / "home").exists() and synth_cache.read_bytes() == before


def test_offline_tag_weights_are_one_line_naming_clip_weights(
    synth_cache: Path, tmp_path: Path, run_cli, monkeypatch
) -> None:
    """A cache made with a tag, searched where the hub is off and no copy was kept: one line at once."""
    import socket

    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("a connection was tried"))
    copy = tmp_path / "tagged.h5"
    shutil.copy(synth_cache, copy)
    with h5py.File(copy, "r+") as f:
        f.attrs["model"] = "ViT-B-32"
        f.attrs["pretrained"] = "openai"
        f.attrs["random_weights"] = False
    res = run_cli("search", "--cache", copy, "a query")
    assert res.code == 2 and len(res.err.strip().splitlines()) == 1, res.text
    assert "cannot download the pretrained weights ViT-B-32/openai" in res.err and "HF_HUB_OFFLINE" in res.err
    assert res.err.rstrip().endswith("--clip-weights PATH")


def test_query_text_is_normalised_in_one_place(tmp_path: Path) -> None:
    """A byte-order mark (kept in the first query, and hiding a first-line comment), CRLF and bare CR
    line ends: the same queries from a file, a list or one string (issue 28)."""
    from vtrbench.search import check_queries, read_queries

    f = tmp_path / "q.txt"
    f.write_bytes("\ufeff# my queries\r\na red  circle\r\n\ufeffblue\tsquare\rgreen\n".encode())
    assert read_queries(f) == ["a red circle", "blue square", "green"]
    assert check_queries(["\ufeffa red circle\r\n", " a\u00a0dog "]) == ["a red circle", "a dog"]
    # no Unicode normalisation: a composed and a decomposed e-acute stay what was typed
    assert check_queries(["caf\u00e9", "cafe\u0301"]) == ["caf\u00e9", "cafe\u0301"]
    with pytest.raises(VtrbenchError, match="the query is empty"):
        check_queries(["\ufeff\r\n"])


def test_control_characters_are_printed_escaped() -> None:
    from vtrbench.io import printable

    assert printable("a\x1b[31mred\x07 caf\u00e9\u2028x\x00") == "a\\x1b[31mred\\x07 caf\u00e9\\u2028x\\x00"
    assert printable("two\nlines\tok\r", keep="\n\t") == "two\nlines\tok\\r"
