"""The public Python API (vtrbench.api): its exported names, and that it gives the CLI's numbers."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vtrbench import api

REPO = Path(__file__).resolve().parents[2]

# The stable surface. Removing a name is a breaking change: it must fail here (adding is fine).
EXPORTED = {
    "Batch", "CaptionVideoDataset", "DatasetIndex", "FeatureCache", "Head", "RunSpec", "SplitData",
    "TrainConfig", "VtrbenchError", "create_head", "create_loss", "embed", "evaluate_embeddings",
    "evaluate_head", "evaluate_similarity", "list_heads", "list_losses", "load_plugin", "load_split",
    "loaded_plugins", "open_cache", "read_result", "register_dataset", "register_head", "register_loss",
    "run_eval", "run_training", "search", "train_head", "write_result",
}  # fmt: skip


def test_exported_names_do_not_disappear() -> None:
    missing = EXPORTED - set(api.__all__)
    assert not missing, f"removed from vtrbench.api.__all__: {sorted(missing)}"
    assert all(hasattr(api, name) for name in api.__all__)


def test_public_functions_are_documented_and_typed() -> None:
    for name in api.__all__:
        obj = getattr(api, name)
        if callable(obj) and getattr(obj, "__module__", "").startswith("vtrbench"):
            assert obj.__doc__, f"vtrbench.api.{name} has no docstring"


def test_api_tour_equals_vtrbench_eval_zeroshot(
    synth_cache: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(sys, "argv", ["api_tour.py", str(synth_cache), "--results", str(tmp_path / "r")])
    runpy.run_path(str(REPO / "examples" / "api_tour.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "equal:" in out


def test_dataset_and_training_through_the_api(synth_cache: Path) -> None:
    with api.open_cache(synth_cache) as cache:
        train = api.load_split(cache, str(cache.attrs["default_train"]))
        test = api.load_split(cache, str(cache.attrs["default_test"]))
        dim = int(cache.attrs["embed_dim"])
    ds = api.CaptionVideoDataset(train)
    assert len(ds) == train.n_texts
    text, video, v = torch.utils.data.default_collate([ds[0], ds[1], ds[2]])
    assert text["tokens"].shape[0] == 3 and video["frames"].shape[0] == 3
    assert torch.equal(video["frames"][1], train.video["frames"][int(train.text_video[1])])
    head = api.create_head("meanp", embed_dim=dim)
    history = api.train_head(head, train, loss="dsl", seed=0, epochs=2, batch_size=8)
    assert [h["epoch"] for h in history] == [1, 2]
    metrics = api.evaluate_head(head, test, postprocessing=("raw",))["metrics"]["raw"]
    assert 0 <= metrics["t2v"]["R@1"] <= 100
    with pytest.raises(api.VtrbenchError, match="unknown recipe option"):
        api.train_head(head, train, epoch=3)


def test_evaluate_similarity_against_hand_counted_ranks() -> None:
    """No ties: R@K and MdR counted by hand from argsort, for t2v with 2 captions per video."""
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(8, 4))
    query_video = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    ranks = np.array([1 + int((sim[i] > sim[i, query_video[i]]).sum()) for i in range(8)])
    m = api.evaluate_similarity(sim, query_video, postprocessing=("raw",))["metrics"]["raw"]["t2v"]
    assert m["R@1"] == pytest.approx(100 * np.mean(ranks <= 1))
    assert m["R@5"] == pytest.approx(100 * np.mean(ranks <= 5))
    assert m["MdR"] == pytest.approx(np.median(ranks))
    assert m["MnR"] == pytest.approx(ranks.mean())
