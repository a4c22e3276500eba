"""Training, evaluation and result files through the real CLI on a cache made by `vtrbench extract`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from vtrbench.cli import main
from vtrbench.errors import VtrbenchError
from vtrbench.results import POSTPROCESSING, TRANSDUCTIVE, read_result

FAST = ["--epochs", "2", "--batch-size", "16", "--lr", "1e-3", "--quiet"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-video synthetic cache extracted with the tiny random CLIP (18 train / 6 test videos)."""
    root = tmp_path_factory.mktemp("train_cache")
    data = root / "synth"
    assert (
        main(
            ["synth", str(data), "--videos", "24", "--seed", "3", "--size", "64", "--seconds", "6", "--quiet"]
        )
        == 0
    )
    out = root / "cache.h5"
    assert (
        main(
            [
                "extract",
                "--dataset",
                "synthetic",
                "--annotations",
                str(data),
                "--model",
                "vtrbench-tiny",
                "--pretrained",
                "none",
                "--output",
                str(out),
                "--workers",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    return out


def _train(cache: Path, results: Path, *args: str) -> int:
    return main(["train", "--cache", str(cache), "--results", str(results), "--device", "cpu", *FAST, *args])


def _only_result(results: Path) -> dict:
    files = sorted(results.rglob("*.json"))
    assert len(files) == 1, files
    return read_result(files[0])


# Every head x loss pair is covered at the unit level (tests/families/test_heads.py); through the CLI each
# head and each loss appears once to keep the suite fast.
@pytest.mark.parametrize(("head", "loss"), [("meanp", "infonce"), ("seqtransf", "dsl"), ("camoe", "dsl")])
def test_train_writes_complete_result(cache: Path, tmp_path: Path, head: str, loss: str) -> None:
    assert _train(cache, tmp_path, "--head", head, "--loss", loss) == 0
    r = _only_result(tmp_path)
    assert r["run_id"] == f"synthetic.{head}.{loss}.{r['config_hash'][:8]}.s0"
    assert r["head"] == head and r["loss"] == loss and r["seed"] == 0 and r["kind"] == "train"
    assert r["protocol"]["train_split"] == "train" and r["protocol"]["test_split"] == "test"
    assert r["protocol"]["n_gallery"] == 6 and r["protocol"]["n_queries"] == len(
        r["per_query_ranks"]["raw"]["t2v"]
    )
    assert set(r["metrics"]) == set(POSTPROCESSING)  # every post-processing, the bank-based ones too
    assert r["transductive"] == TRANSDUCTIVE
    for post in r["metrics"].values():
        for d in ("t2v", "v2t"):
            assert 0 <= post[d]["R@1"] <= post[d]["R@5"] <= post[d]["R@10"] <= 100
            assert post[d]["MdR"] >= 1 and post[d]["MnR"] >= 1
    assert [h["epoch"] for h in r["history"]] == [1, 2]
    assert all(h["loss"] > 0 for h in r["history"])
    assert r["cache"]["random_weights"] is True and r["cache"]["config_hash"]
    assert r["provenance"]["torch"] == torch.__version__
    if loss == "dsl":
        assert r["loss_options"] == {"temperature": 1000.0}
    if head == "camoe":
        gate = r["gate"]["mean_weight"]
        assert set(gate) == {"action", "entity", "fusion", "scene"}
        assert sum(gate.values()) == pytest.approx(1.0, abs=1e-4)
    else:
        assert r["gate"] is None


def test_same_seed_same_numbers_other_seed_differs(cache: Path, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _train(cache, a, "--head", "camoe", "--loss", "dsl", "--seed", "1") == 0
    assert _train(cache, b, "--head", "camoe", "--loss", "dsl", "--seed", "1") == 0
    assert _train(cache, c, "--head", "camoe", "--loss", "dsl", "--seed", "2") == 0
    ra, rb, rc = _only_result(a), _only_result(b), _only_result(c)
    assert ra["metrics"] == rb["metrics"] and ra["per_query_ranks"] == rb["per_query_ranks"]
    assert [h["loss"] for h in ra["history"]] == [h["loss"] for h in rb["history"]]
    assert [h["loss"] for h in ra["history"]] != [h["loss"] for h in rc["history"]]
    assert ra["config_hash"] == rc["config_hash"] and ra["run_id"] != rc["run_id"]


def test_overwrite_never_skips_and_always_replaces(cache: Path, tmp_path: Path, capsys) -> None:
    assert _train(cache, tmp_path, "--head", "meanp", "--loss", "infonce") == 0
    path = next(tmp_path.rglob("*.json"))
    first = path.read_text()
    capsys.readouterr()
    assert _train(cache, tmp_path, "--head", "meanp", "--loss", "infonce") == 0
    assert "skipped" in capsys.readouterr().out
    assert path.read_text() == first
    # Mark the file (still a valid result) and age it, so that "replaced" is visible whatever the
    # clock resolution: a run that skipped it would leave the mark and the old st_mtime_ns.
    marked = json.loads(first)
    marked["created_utc"] = "2000-01-01T00:00:00+00:00"
    path.write_text(json.dumps(marked))
    os.utime(path, ns=(10**18, 10**18))
    assert _train(cache, tmp_path, "--head", "meanp", "--loss", "infonce") == 0  # never: still kept
    assert json.loads(path.read_text())["created_utc"] == "2000-01-01T00:00:00+00:00"
    assert path.stat().st_mtime_ns == 10**18
    assert _train(cache, tmp_path, "--head", "meanp", "--loss", "infonce", "--overwrite", "always") == 0
    replaced = json.loads(path.read_text())
    assert replaced["created_utc"] != "2000-01-01T00:00:00+00:00" and path.stat().st_mtime_ns != 10**18
    assert replaced["run_id"] == marked["run_id"] and replaced["metrics"] == marked["metrics"]


def test_checkpoint_roundtrip_gives_the_same_metrics(cache: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "head.pt"
    assert (
        _train(cache, tmp_path / "train", "--head", "camoe", "--loss", "dsl", "--save-checkpoint", str(ckpt))
        == 0
    )
    trained = _only_result(tmp_path / "train")
    # weights_only loading must accept the file (no pickled code)
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["head"] == "camoe"
    assert (
        main(
            [
                "eval",
                "--cache",
                str(cache),
                "--checkpoint",
                str(ckpt),
                "--results",
                str(tmp_path / "ev"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    evaluated = _only_result(tmp_path / "ev")
    assert evaluated["kind"] == "eval"
    assert evaluated["metrics"] == trained["metrics"]


def test_zeroshot_eval(cache: Path, tmp_path: Path) -> None:
    assert (
        main(
            [
                "eval",
                "--cache",
                str(cache),
                "--head",
                "zeroshot",
                "--results",
                str(tmp_path),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    r = _only_result(tmp_path)
    assert r["head"] == "zeroshot" and r["loss"] == "none" and r["history"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--head", "camo"], "did you mean 'camoe'"),
        (["--loss", "dls"], "did you mean 'dsl'"),
        (["--head", "meanp", "--experts", "fusion"], "only apply to --head camoe"),
        (["--head", "camoe", "--experts", "fusion,acton"], "did you mean 'action'"),
        (["--head", "camoe", "--test-split", "tset"], "did you mean 'test'"),
        (["--head", "camoe", "--train-split", "test"], "does not select or train on the test split"),
        (["--head", "meanp", "--loss", "infonce", "--temperature", "5"], "--temperature only applies"),
    ],
)
def test_clear_errors(cache: Path, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    assert _train(cache, tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()), err
    assert "Traceback" not in err
    assert not list(tmp_path.rglob("*.json"))


def test_pos_streams_need_masks(tmp_path: Path, cache: Path, capsys) -> None:
    import h5py

    stripped = tmp_path / "nomasks.h5"
    stripped.write_bytes(cache.read_bytes())
    with h5py.File(stripped, "a") as f:
        del f["texts/noun_mask"]
        del f["texts/verb_mask"]
    assert _train(stripped, tmp_path / "r", "--head", "camoe", "--streams", "pos") == 2
    assert "noun_mask" in capsys.readouterr().err
    assert _train(stripped, tmp_path / "r", "--head", "camoe", "--streams", "eot") == 0


def test_non_finite_loss_stops_without_result(cache: Path, tmp_path: Path, monkeypatch) -> None:
    import vtrbench.runs.train as train_mod

    real = train_mod.create_loss

    def exploding(name: str, **opts):
        base = real(name, **opts)
        return lambda logits: base(logits) * float("nan")

    monkeypatch.setattr(train_mod, "create_loss", exploding)
    with pytest.raises(VtrbenchError, match="loss became nan"):
        from vtrbench.runs.runner import run_training
        from vtrbench.runs.spec import RunSpec

        run_training(
            RunSpec(
                cache_path=cache,
                head="meanp",
                loss="infonce",
                epochs=1,
                batch_size=8,
                results_dir=tmp_path,
                progress=False,
            ),
            0,
        )
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.tmp"))


def test_val_fraction_records_validation_without_touching_test(cache: Path, tmp_path: Path) -> None:
    assert _train(cache, tmp_path, "--head", "meanp", "--loss", "infonce", "--val-fraction", "0.25") == 0
    r = _only_result(tmp_path)
    assert all("val" in h and 0 <= h["val"]["t2v/R@1"] <= 100 for h in r["history"])
    assert r["config"]["val_fraction"] == 0.25


@pytest.mark.parametrize("name", ["zeroshot", "meanp", "seqtransf", "camoe"])
def test_eot_only_text_table_gives_the_same_text_embeddings(name: str) -> None:
    from vtrbench.factory import create_head
    from vtrbench.runs.data import SplitData, take, text_for

    g = torch.Generator().manual_seed(0)
    n, length, dim = 10, 7, 32
    eot = torch.randint(1, length, (n,), generator=g)
    mask = torch.arange(length)[None, :] <= eot[:, None]
    text = {
        "tokens": torch.randn(n, length, dim, generator=g).half(),
        "token_mask": mask,
        "eot": eot,
        "noun_mask": mask & (torch.rand(n, length, generator=g) > 0.5),
        "verb_mask": mask & (torch.rand(n, length, generator=g) > 0.5),
    }
    video = {
        "frames": torch.randn(3, 4, dim, generator=g).half(),
        "frame_mask": torch.ones(3, 4, dtype=torch.bool),
    }
    data = SplitData("x", video, text, torch.arange(n) % 3, torch.arange(3).numpy(), torch.arange(n).numpy())
    torch.manual_seed(0)
    head = create_head(name, embed_dim=dim).eval()
    reduced = text_for(head, data)
    idx = torch.arange(n)
    with torch.no_grad():
        full = head.encode_text(take(data.text, idx, torch.device("cpu")))
        small = head.encode_text(take(reduced.text, idx, torch.device("cpu")))
    torch.testing.assert_close(small, full, rtol=0, atol=1e-6)
    if head.text_needs_tokens:
        assert reduced is data
    else:
        assert reduced.text["tokens"].shape == (n, 1, dim)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--epochs", "0"), ("--batch-size", "1"), ("--lr", "-1"), ("--val-fraction", "1"), ("--dsl-tau", "0"),
     ("--qb-bank", "0"), ("--qb-beta", "-2"), ("--temperature", "0")],
)  # fmt: skip
def test_numeric_options_are_range_checked(
    cache: Path, tmp_path: Path, capsys, option: str, value: str
) -> None:
    code = main(["train", "--cache", str(cache), "--results", str(tmp_path), "--quiet", option, value])
    err = capsys.readouterr().err
    assert code == 2 and f"Invalid value for '{option}'" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.json"))
