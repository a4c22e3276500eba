"""Reliability of train / eval / ablate: one validation for every way in, existing results and
checkpoints, unwritable outputs, bad checkpoints, train/test overlap; and the evaluation
conventions made explicit (QB-Norm k, CLIP4Clip's MdR, precision), each checked against an
independent re-implementation of the reference's rule."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vtrbench.config import check_option, check_seed
from vtrbench.errors import VtrbenchError
from vtrbench.eval import evaluate_embeddings
from vtrbench.runs.grid import load_grid
from vtrbench.runs.spec import RunSpec

FAST = ("--head", "meanp", "--loss", "infonce", "--epochs", "1", "--batch-size", "8", "--device", "cpu")


def _train(run_cli: Callable[..., Any], cache: Path, results: Path, *extra: Any) -> Any:
    return run_cli("train", "--cache", cache, *FAST, "--results", results, "--quiet", *extra)


def _one_line_error(r: Any, *mentions: str) -> None:
    assert r.code == 2, r.text
    assert "Traceback" not in r.text
    lines = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.err
    for m in mentions:
        assert m in lines[0], (m, lines[0])


# ------------------------------------------------------------------ one validation


@pytest.mark.parametrize(
    ("args", "mention"),
    [
        (["--lr", "nan"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--seed", "12345678901234567890123"], "--seed"),
        (["--seed", "-3"], "--seed"),
        (["--dsl-tau", "nan"], "--dsl-tau"),
        (["--weight-decay", "inf"], "--weight-decay"),
        (["--qb-beta", "inf"], "--qb-beta"),
        (["--precision", "bf16"], "--precision"),
    ],
)
def test_cli_refuses_non_finite_and_out_of_range(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path, args: list[str], mention: str
) -> None:
    r = _train(run_cli, synth_cache, tmp_path / "res", *args)
    _one_line_error(r, mention)
    assert not (tmp_path / "res").exists()


def test_val_fraction_that_leaves_no_train_video(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path
) -> None:
    r = _train(run_cli, synth_cache, tmp_path / "res", "--val-fraction", "0.999")
    _one_line_error(r, "--val-fraction")
    assert not list((tmp_path / "res").rglob("*.json"))


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ('heads = ["meanp"]\nlosses = ["infonce"]\n[train]\nepochs = 0\n', ["train.epochs"]),
        ('heads = ["meanp"]\nlosses = ["infonce"]\n[train]\nbatch_size = 1\n', ["train.batch_size"]),
        ('heads = ["meanp"]\n[train]\nlr = nan\n', ["train.lr"]),
        ('heads = ["meanp"]\n[train]\nepochs = "5"\n', ["train.epochs"]),
        ('heads = ["meanp"]\n[train]\nepochs = 2.5\n', ["train.epochs"]),
        ('heads = ["meanp"]\n[train]\nval_fraction = 1.0\n', ["train.val_fraction"]),
        ('heads = ["meanp"]\n[train]\nv2t_protocol = "max"\n', ["train.v2t_protocol"]),
        ('heads = "meanp"\n', ["heads must be a list"]),
        ('heads = [["meanp"]]\n', ["heads"]),
        ('heads = ["meanp"]\nseeds = [12345678901234567890]\n', ["seeds"]),
        ('heads = ["meanp"]\nseeds = ["0"]\n', ["seeds"]),
        ('heads = ["camoe"]\n[camoe]\naux_weight = [nan]\n', ["camoe.aux_weight"]),
        ('heads = ["camoe"]\n[camoe]\nexperts = ["fusion"]\n', ["camoe.experts"]),
        ('heads = ["meanp"]\ntrain = 3\n', ["train must be a table"]),
        ('heads = ["meanp"]\n[train.nested]\nx = 1\n', ["nested"]),
    ],
)
def test_grid_files_get_the_command_line_checks(tmp_path: Path, body: str, mentions: list[str]) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(body)
    with pytest.raises(VtrbenchError) as e:
        load_grid(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    for m in mentions:
        assert m in msg
    assert "unknown head 'm'" not in msg


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe[train]\n", ("a = " + "[" * 3000 + "]" * 3000).encode()],
    ids=["not-utf8", "deeply-nested"],
)
def test_unreadable_grid_files(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "grid.toml"
    path.write_bytes(data)
    with pytest.raises(VtrbenchError, match="grid.toml"):
        load_grid(path)


def test_grid_that_the_cli_refuses_is_refused_before_any_run(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path
) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('heads = ["meanp"]\nlosses = ["infonce"]\nseeds = [0]\n[train]\nepochs = 0\n')
    r = run_cli("ablate", "--cache", synth_cache, "--grid", grid, "--results", tmp_path / "res", "--quiet")
    _one_line_error(r, str(grid), "train.epochs")
    assert not list((tmp_path / "res").rglob("*.json"))


@pytest.mark.parametrize(
    ("field", "value", "mention"),
    [
        ("epochs", 0, "--epochs"),
        ("batch_size", 1, "--batch-size"),
        ("lr", float("nan"), "--lr"),
        ("epochs", True, "--epochs"),
        ("mdr", "lower", "--mdr"),
        ("qb_k", 0, "--qb-k"),
        ("head", "meanpp", "meanp"),
        ("loss_options", {"temperature": 5.0}, "--temperature"),
    ],
)
def test_python_callers_go_through_the_same_validation(field: str, value: Any, mention: str) -> None:
    with pytest.raises(VtrbenchError, match=mention):
        RunSpec(cache_path=Path("x.h5"), **{"head": "meanp", "loss": "infonce", field: value})


def test_option_rules_accept_what_they_should() -> None:
    assert check_option("epochs", 3) == 3 and isinstance(check_option("lr", 1), float)
    assert check_option("train_split", None) is None
    assert check_seed(2**63 - 1) == 2**63 - 1
    with pytest.raises(VtrbenchError):
        check_seed(2**63)


# ------------------------------------------------------------------ existing results and checkpoints


def _result_file(results: Path) -> Path:
    files = sorted(results.rglob("*.s0.json"))
    assert len(files) == 1, files
    return files[0]


@pytest.mark.parametrize(
    ("command", "damage"),
    [("train", d) for d in ("truncated", "not-utf8", "foreign", "not-a-result")]
    + [("eval", "truncated"), ("eval", "foreign")],
)
def test_an_invalid_existing_result_is_redone_not_skipped(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path, damage: str, command: str
) -> None:
    res = tmp_path / "res"

    def run() -> Any:
        if command == "train":
            return _train(run_cli, synth_cache, res)
        return run_cli(
            "eval", "--cache", synth_cache, "--head", "zeroshot", "--device", "cpu", "--results", res
        )

    assert run().code == 0
    path = _result_file(res)
    good = json.loads(path.read_text())
    bad = {
        "truncated": path.read_bytes()[:200],
        "not-utf8": b"\xff\xfe" + path.read_bytes()[2:],
        "foreign": json.dumps({**good, "run_id": "other.run.s0"}).encode(),
        "not-a-result": b"[1, 2, 3]",
    }[damage]
    path.write_bytes(bad)
    r = run()
    assert r.code == 0 and "Traceback" not in r.text, r.text
    assert "warning" in r.err and "skipped" not in r.text
    again = json.loads(path.read_text())
    assert again["run_id"] == good["run_id"] and again["metrics"] == good["metrics"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_checkpoint_missing_after_a_run_is_written_by_the_rerun(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path
) -> None:
    res, ckpt = tmp_path / "res", tmp_path / "ck" / "head.pt"
    assert _train(run_cli, synth_cache, res).code == 0  # the result exists, no checkpoint
    r = _train(run_cli, synth_cache, res, "--save-checkpoint", ckpt)
    assert r.code == 0 and ckpt.is_file() and "skipped" not in r.text
    r = _train(run_cli, synth_cache, res, "--save-checkpoint", ckpt)
    assert "skipped" in r.text  # now result and checkpoint are both there
    ckpt.write_bytes(b"junk")
    r = _train(run_cli, synth_cache, res, "--save-checkpoint", ckpt)
    assert r.code == 0 and "skipped" not in r.text
    assert torch.load(ckpt, weights_only=True)["format"] == "vtrbench-head-1"


def test_a_failing_checkpoint_write_leaves_no_result(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vtrbench.runs.record

    def fail(*a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vtrbench.runs.record, "save_checkpoint", fail)
    res = tmp_path / "res"
    r = _train(run_cli, synth_cache, res, "--save-checkpoint", tmp_path / "h.pt")
    _one_line_error(r, "No space left")
    assert not list(res.rglob("*.json"))


# ------------------------------------------------------------------ unwritable outputs, before the work


@contextmanager
def _readonly_dir(path: Path) -> Iterator[bool]:
    """A folder nobody can write to: a read-only tmpfs for root (permission bits do not stop root),
    mode 0555 otherwise. Yields False when that cannot be made here."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield True
        finally:
            path.chmod(0o755)
        return
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    try:
        yield ok.returncode == 0
    finally:
        if ok.returncode == 0:
            subprocess.run(["umount", str(path)], capture_output=True)


@pytest.mark.parametrize("option", ["--results", "--save-checkpoint"])
@pytest.mark.parametrize("kind", ["parent-is-file", "output-is-folder", "read-only"])
def test_unwritable_outputs_are_refused_before_training(
    run_cli: Callable[..., Any],
    synth_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    kind: str,
) -> None:
    import vtrbench.runs.train

    def no_training(*a: Any, **k: Any) -> None:
        raise AssertionError("training started before the output was checked")

    monkeypatch.setattr(vtrbench.runs.train, "fit", no_training)
    res, ckpt = tmp_path / "res", tmp_path / "h.pt"
    if kind == "parent-is-file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "sub"
    elif kind == "output-is-folder":
        target = tmp_path / "folder.pt"
        target.mkdir()
    else:
        target = tmp_path / "ro" / "out"
    if option == "--results":
        res = target
    else:
        ckpt = target
    with _readonly_dir(tmp_path / "ro") as ok:
        if kind == "read-only" and not ok:
            pytest.skip("cannot make a read-only folder here")
        if kind == "output-is-folder" and option == "--results":
            # a folder where this run's result file goes
            from vtrbench.cache import FeatureCache
            from vtrbench.runs.runner import planned_path

            res = tmp_path / "res2"
            spec = RunSpec(synth_cache, "meanp", "infonce", epochs=1, batch_size=8, results_dir=res)
            with FeatureCache(synth_cache) as c:
                planned_path(spec, c, 0)[1].mkdir(parents=True)
        r = _train(run_cli, synth_cache, res, "--save-checkpoint", ckpt)
    _one_line_error(r, "cannot write")


def test_eval_output_checks_and_bad_checkpoints(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    r = run_cli("eval", "--cache", synth_cache, "--head", "zeroshot", "--results", tmp_path / "file" / "r")
    _one_line_error(r, "cannot write", "file")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02}q\x00.garbage")
    r = run_cli("eval", "--cache", synth_cache, "--checkpoint", junk, "--results", tmp_path / "r")
    _one_line_error(r, str(junk))
    assert "weights_only" not in r.text


def test_eval_of_a_checkpoint_of_another_width_or_head(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path
) -> None:
    from vtrbench.factory import create_head

    ckpt = tmp_path / "h.pt"
    assert _train(run_cli, synth_cache, tmp_path / "res", "--save-checkpoint", ckpt).code == 0
    saved = torch.load(ckpt, weights_only=True)
    wide = dict(saved, embed_dim=32, state_dict=create_head("meanp", embed_dim=32).state_dict())
    torch.save(wide, tmp_path / "wide.pt")
    other = dict(saved, head="seqtransf")
    torch.save(other, tmp_path / "other.pt")
    r = run_cli(
        "eval", "--cache", synth_cache, "--checkpoint", tmp_path / "wide.pt", "--results", tmp_path / "r"
    )
    _one_line_error(r, "width 32")
    r = run_cli(
        "eval", "--cache", synth_cache, "--checkpoint", tmp_path / "other.pt", "--results", tmp_path / "r"
    )
    _one_line_error(r, "other.pt", "seqtransf")


# ------------------------------------------------------------------ content hash, overlap


def test_results_record_the_cache_content_hash_and_it_makes_the_run_id(
    synth_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vtrbench.cache import FeatureCache
    from vtrbench.runs.runner import planned_path, run_training

    spec = RunSpec(
        synth_cache, "meanp", "infonce", epochs=1, batch_size=8, results_dir=tmp_path, progress=False
    )
    monkeypatch.setattr(FeatureCache, "content_hash", property(lambda self: "a" * 16), raising=False)
    with FeatureCache(synth_cache) as c:
        path_a = planned_path(spec, c, 0)[1]
    out = run_training(spec, 0)
    assert out.result["cache"]["content_hash"] == "a" * 16 and out.path == path_a
    monkeypatch.setattr(FeatureCache, "content_hash", property(lambda self: "b" * 16), raising=False)
    with FeatureCache(synth_cache) as c:
        assert planned_path(spec, c, 0)[1] != path_a


@pytest.fixture(scope="module")
def overlap_cache(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom CSV dataset listing one video in both splits (and a copy of another under a new name)."""
    from tests.conftest import invoke_cli

    folder = tmp_path_factory.mktemp("overlap")
    videos = sorted((synth_dir / "videos").iterdir())[:6]
    copy = folder / "copy_of_1.mp4"
    copy.write_bytes(videos[1].read_bytes())
    rows = [(str(v), f"a caption of clip {i}", "train" if i < 4 else "test") for i, v in enumerate(videos)]
    rows += [
        (str(v), f"another caption of clip {i}", "train" if i < 4 else "test") for i, v in enumerate(videos)
    ]
    rows += [(str(videos[0]), "the leaked clip", "test"), (str(copy), "the copied clip", "test")]
    ann = folder / "ann.csv"
    with ann.open("w", newline="") as f:
        csv.writer(f).writerows([("video", "caption", "split"), *rows])
    out = folder / "overlap.h5"
    r = invoke_cli(
        "extract", "--dataset", "custom", "--annotations", ann, "--model", "vtrbench-tiny", "--pretrained",
        "none", "--device", "cpu", "--workers", "0", "--quiet", "--output", out,
    )  # fmt: skip
    assert r.code == 0, r.text
    return out


def test_overlapping_splits_are_refused_unless_allowed(
    run_cli: Callable[..., Any], overlap_cache: Path, tmp_path: Path
) -> None:
    splits = ("--train-split", "train", "--test-split", "test")
    res = tmp_path / "res"
    r = _train(run_cli, overlap_cache, res, *splits)
    _one_line_error(r, "1 video(s)", "--allow-overlap", "/videos/")
    r = run_cli("eval", "--cache", overlap_cache, "--head", "zeroshot", *splits, "--results", res)
    _one_line_error(r, "--allow-overlap")
    r = run_cli(
        "ablate", "--cache", overlap_cache, "--heads", "meanp", "--losses", "infonce", "--seeds", "0",
        "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--quiet", *splits, "--results", res,
    )  # fmt: skip
    _one_line_error(r, "--allow-overlap")
    assert not list(res.rglob("*.json"))
    ckpt = tmp_path / "h.pt"
    r = _train(run_cli, overlap_cache, res, *splits, "--allow-overlap", "--save-checkpoint", ckpt)
    assert r.code == 0, r.text
    protocol = json.loads(_result_file(res).read_text())["protocol"]
    assert protocol["allow_overlap"] is True and protocol["train_test_shared_videos"] == 1
    # a custom dataset has no standard train split: the checkpoint's own train split is checked
    r = run_cli(
        "eval", "--cache", overlap_cache, "--checkpoint", ckpt, "--test-split", "test", "--results", res
    )
    _one_line_error(r, "--allow-overlap")


def test_overlap_by_file_content_when_the_cache_has_file_hashes(
    overlap_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from vtrbench.cache import FeatureCache
    from vtrbench.runs.checks import check_overlap

    with FeatureCache(overlap_cache) as c:
        paths = c.read_strings("videos", "path")
        digests = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]
    monkeypatch.setattr(FeatureCache, "file_hashes", property(lambda self: digests), raising=False)
    with FeatureCache(overlap_cache) as c, pytest.raises(VtrbenchError, match=r"2 video\(s\).*same file as"):
        check_overlap(c, "train", "test", allow=False)


# ------------------------------------------------------------------ QB-Norm k, MdR convention, precision


def _reference_qb_norm(train_test: np.ndarray, test_test: np.ndarray, k: int, beta: float) -> np.ndarray:
    """The official ``dynamic_inverted_softmax.qb_norm`` (ioanacroi/qb-norm), re-written from its text."""
    retrieved = np.unique(np.argsort(-train_test, axis=1)[:, :k].reshape(-1))
    out = test_test.copy()
    norm = np.exp(train_test * beta).sum(axis=0)
    top1 = np.argsort(-test_test, axis=1)[:, 0]
    rows = np.nonzero(np.isin(top1, retrieved))[0]
    out[rows, :] = np.exp(test_test[rows, :] * beta) / norm
    return out


@pytest.mark.parametrize("k", [1, 2, 5])
def test_qbnorm_k_matches_the_official_code(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    text = torch.nn.functional.normalize(torch.randn(60, 16, generator=g, dtype=torch.float64), dim=1)
    video = torch.nn.functional.normalize(torch.randn(30, 16, generator=g, dtype=torch.float64), dim=1)
    bank = torch.nn.functional.normalize(torch.randn(40, 16, generator=g, dtype=torch.float64), dim=1)
    qv = torch.arange(60) % 30
    res = evaluate_embeddings(
        text, video, qv, logit_scale=100.0, bank_text=bank, bank_video=bank[:20], qb_k=k,
        qb_beta=5.0, postprocessing=["qbnorm"],
    )  # fmt: skip
    sims = _reference_qb_norm((bank @ video.T).numpy(), (text @ video.T).numpy(), k, 5.0)
    order = np.argsort(-sims, axis=1)
    ref_ranks = 1 + np.array([int(np.nonzero(order[i] == int(qv[i]))[0][0]) for i in range(60)])
    assert res["per_query_ranks"]["qbnorm"]["t2v"] == ref_ranks.astype(float).tolist()
    assert res["protocol"]["qbnorm"]["k"] == k


def _clip4clip_t2v_mdr(sim: np.ndarray, query_video: np.ndarray) -> float:
    """CLIP4Clip's multi-sentence t2v: captions grouped per video, padded with -inf, double argsort,
    ``torch.median`` of the valid ranks (tensor_text_to_video_metrics), re-written from its text."""
    n_videos = sim.shape[1]
    groups = [np.nonzero(query_video == v)[0] for v in range(n_videos)]
    width = max(len(g) for g in groups)
    stacked = np.full((n_videos, width, n_videos), -np.inf)
    for v, g in enumerate(groups):
        stacked[v, : len(g)] = sim[g]
    t = torch.from_numpy(stacked).permute(1, 0, 2)
    second = torch.argsort(torch.argsort(t, dim=-1, descending=True), dim=-1)
    ranks = torch.flatten(torch.diagonal(second, dim1=1, dim2=2))
    diag = torch.flatten(torch.diagonal(torch.from_numpy(stacked), dim1=0, dim2=2))
    valid = ranks[~torch.isinf(diag)]
    return float(torch.median(valid + 1))


def test_mdr_clip4clip_convention_matches_clip4clip_multi_sentence_path() -> None:
    # 10 videos with 1-3 captions each: an even number of captions (20), so the two medians can differ
    counts = [1, 3, 2, 2, 1, 3, 2, 2, 2, 2]
    qv = torch.tensor([v for v, c in enumerate(counts) for _ in range(c)])
    told_apart = 0
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        video = torch.nn.functional.normalize(torch.randn(10, 8, generator=g, dtype=torch.float64), dim=1)
        text = torch.nn.functional.normalize(
            video[qv] + 2.0 * torch.randn(len(qv), 8, generator=g, dtype=torch.float64), dim=1
        )
        ref = _clip4clip_t2v_mdr((text @ video.T).numpy(), qv.numpy())
        c4c = evaluate_embeddings(text, video, qv, logit_scale=100.0, mdr="clip4clip", postprocessing=["raw"])
        std = evaluate_embeddings(text, video, qv, logit_scale=100.0, postprocessing=["raw"])
        ranks = np.array(std["per_query_ranks"]["raw"]["t2v"])
        assert c4c["metrics"]["raw"]["t2v"]["MdR"] == ref
        assert std["metrics"]["raw"]["t2v"]["MdR"] == float(np.median(ranks))
        told_apart += ref != float(np.median(ranks))
        # v2t stays np.median in CLIP4Clip (compute_metrics on the max-grouped matrix)
        assert c4c["metrics"]["raw"]["v2t"] == std["metrics"]["raw"]["v2t"]
        assert c4c["protocol"]["mdr"] == "clip4clip"
    assert told_apart, "no case told the two conventions apart"


def test_results_name_the_conventions_they_used(
    run_cli: Callable[..., Any], synth_cache: Path, tmp_path: Path
) -> None:
    r = _train(run_cli, synth_cache, tmp_path / "res", "--mdr", "clip4clip", "--qb-k", "2")
    assert r.code == 0, r.text
    result = json.loads(_result_file(tmp_path / "res").read_text())
    p = result["protocol"]
    assert p["mdr"].startswith("clip4clip") and p["qbnorm"]["k"] == 2 and p["precision"] == "fp32"
    assert "extension" in p["qbnorm"]["v2t"] and p["allow_overlap"] is False
    assert result["config"]["mdr"] == "clip4clip" and result["config"]["precision"] == "fp32"
    assert math.isfinite(result["metrics"]["raw"]["t2v"]["MdR"])


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_lower_median_is_torch_medians_rule(n: int) -> None:
    from vtrbench.metrics import median_rank

    x = np.random.default_rng(n).integers(1, 50, size=n).astype(np.float64)
    assert median_rank(x, lower=True) == float(torch.median(torch.from_numpy(x)))
    assert median_rank(x) == float(np.median(x))
