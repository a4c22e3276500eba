"""Issue 19, class 2: absurd normalisation values are refused before any work, and NaN/inf features
are refused at extraction naming the video (an encoder overflow the option check cannot rule out)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from vtrbench.cache import parts_dir
from vtrbench.config import ExtractConfig
from vtrbench.errors import VtrbenchError
from vtrbench.extract.preprocess_cfg import check_preprocessing, resolve_preprocessing

BAD = [
    ("--image-std", "1e-30", "--image-std"),
    ("--image-std", "0", "--image-std"),
    ("--image-std", "-0.2", "--image-std"),
    ("--image-std", "0.0009", "--image-std"),
    ("--image-std", "nan", "--image-std"),
    ("--image-std", "inf", "--image-std"),
    ("--image-std", "58.395,57.12,57.375", "0-255"),  # ImageNet's std on the 0-255 scale
    ("--image-std", "0.2,0.3", "--image-std"),  # two numbers
    ("--image-std", "", "--image-std"),
    ("--image-mean", "1e30", "--image-mean"),
    ("--image-mean", "-1e30", "--image-mean"),
    ("--image-mean", "nan", "--image-mean"),
    ("--image-mean", "-inf", "--image-mean"),
    ("--image-mean", "123.675,116.28,103.53", "0-255"),
    ("--image-mean", "0.5,0.5,0.5,0.5", "--image-mean"),
]


@pytest.mark.parametrize(("option", "value", "mention"), BAD)
def test_cli_refuses_absurd_values_before_reading_the_dataset(
    run_cli: Callable[..., Any], tmp_path: Path, option: str, value: str, mention: str
) -> None:
    out = tmp_path / "c.h5"
    # the annotations do not exist: the option must be refused first, in one line
    r = run_cli("extract", "--dataset", "synthetic", "--annotations", str(tmp_path / "absent"),
                "--model", "vtrbench-tiny", "--pretrained", "none", "--device", "cpu", "--quiet",
                "--output", str(out), option, value)  # fmt: skip
    assert r.code == 2, r.text
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and mention in errors[0] and "Traceback" not in r.text, r.err
    assert not out.exists() and not parts_dir(out).exists()


def test_the_bounds_themselves_are_accepted() -> None:
    pre = resolve_preprocessing("vtrbench-tiny", "none", mean=(-10.0, 0.0, 10.0), std=(1e-3, 1.0, 10.0))
    assert pre.mean == (-10.0, 0.0, 10.0) and pre.std == (1e-3, 1.0, 10.0)


@pytest.mark.parametrize(
    "change",
    [{"image_std": (1e-30,) * 3}, {"image_std": (0.3, float("nan"), 0.3)}, {"image_mean": (1e30,) * 3},
     {"image_mean": (0.5, 0.5)}, {"image_std": (11.0, 0.3, 0.3)}],
)  # fmt: skip
def test_the_python_config_takes_the_same_check(tmp_path: Path, change: dict[str, Any]) -> None:
    from vtrbench.extract.pipeline import RunOptions, extract_features

    cfg = dataclasses.replace(
        ExtractConfig(dataset="synthetic", dataset_fingerprint="x", model="vtrbench-tiny", pretrained="none"),
        **change,
    )
    with pytest.raises(VtrbenchError, match="image_(std|mean)"):
        check_preprocessing(cfg)
    out = tmp_path / "c.h5"
    with pytest.raises(VtrbenchError, match="image_(std|mean)"):
        extract_features(None, cfg, out, RunOptions(progress=False))  # type: ignore[arg-type]
    assert not out.exists() and not parts_dir(out).exists()


def test_nonfinite_features_stop_the_extraction_naming_the_video(
    run_cli: Callable[..., Any],
    synth_extract_argv: Callable[..., list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import vtrbench.extract.encode as encode

    real = encode.encode_frames
    calls = {"n": 0}

    def overflowing(clip: Any, pixels: torch.Tensor, **kw: Any) -> Any:
        emb, tok = real(clip, pixels, **kw)
        calls["n"] += 1
        if calls["n"] == 3:  # the third chunk's batch: the encoder overflows on its first frame
            emb = emb.clone()
            emb[0, 0] = float("inf")
        return emb, tok

    monkeypatch.setattr(encode, "encode_frames", overflowing)
    out = tmp_path / "c.h5"
    r = run_cli(*synth_extract_argv(out))
    assert r.code == 2 and "Traceback" not in r.text, r.text
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    parts = parts_dir(out)
    # chunk size 2: the third chunk starts at video row 4
    video = json.loads((parts / "manifest.json").read_text())["video_ids"][4]
    assert len(errors) == 1 and "NaN/inf" in errors[0] and f"video {video} " in errors[0], r.err
    assert (parts / "videos-00001.h5").exists() and not (parts / "videos-00002.h5").exists()
    assert not out.exists()
    monkeypatch.setattr(encode, "encode_frames", real)  # the resume makes the rest
    assert run_cli(*synth_extract_argv(out)).code == 0 and out.is_file()


@pytest.mark.slow  # a whole extraction (captions come after every video); the video check above is fast
def test_nonfinite_caption_features_are_refused(
    run_cli: Callable[..., Any],
    synth_extract_argv: Callable[..., list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import vtrbench.extract.encode as encode

    real = encode.encode_tokens

    def nan_tokens(*a: Any, **kw: Any) -> torch.Tensor:
        out = real(*a, **kw).clone()
        out[5, 0, 0] = float("nan")
        return out

    monkeypatch.setattr(encode, "encode_tokens", nan_tokens)
    out = tmp_path / "c.h5"
    r = run_cli(*synth_extract_argv(out))
    assert r.code == 2 and "caption row 5" in r.err and "Traceback" not in r.text, r.err
    assert not (parts_dir(out) / "texts-00000.h5").exists() and not out.exists()
