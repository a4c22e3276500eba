"""ucofia states that it reads patch tokens and refuses a cache or split without them in one line
naming ``vtrbench extract --patch-tokens``, before any training: at plan time (the check every
command runs when it plans: ``runs.train.check_requirements``) and through the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from vtrbench import api
from vtrbench.cache import FeatureCache
from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head
from vtrbench.runs.train import check_requirements


def _one_line(err: pytest.ExceptionInfo, who: str) -> str:
    text = str(err.value)
    assert "\n" not in text and "--patch-tokens" in text and who in text, text
    return text


def test_the_head_declares_patch_tokens() -> None:
    assert create_head("ucofia", embed_dim=16).requires == frozenset({"patches"})


def test_a_cache_without_patch_tokens_is_refused_at_plan_time(synth_cache: Path) -> None:
    with FeatureCache(synth_cache) as cache:
        assert not cache.has("patches")  # the fixture's cache was extracted without them
        head = create_head("ucofia", embed_dim=int(cache.attrs["embed_dim"]))
        with pytest.raises(VtrbenchError) as err:
            check_requirements(head, cache, "ucofia")
    assert "patches" in _one_line(err, "ucofia")


def test_the_api_refuses_a_split_without_patch_tokens(synth_cache: Path) -> None:
    train = api.load_split(synth_cache, "train")
    head = api.create_head("ucofia", embed_dim=int(train.video["frames"].shape[-1]))
    before = [p.detach().clone() for p in head.parameters()]
    with pytest.raises(VtrbenchError) as err:
        api.train_head(head, train, epochs=1, batch_size=8)
    _one_line(err, "train_head")
    # nothing trained
    assert all((p == b).all() for p, b in zip(head.parameters(), before, strict=True))
