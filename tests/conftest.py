"""Shared session fixtures: a tiny synthetic dataset and its feature cache, made once per test run.

Fixtures (all session-scoped); treat the files they make as READ-ONLY (copy a file into
``tmp_path`` before changing it):

``synth_dir`` -> Path
    A synthetic dataset rendered by ``vtrbench synth DIR --videos 12 --seed 0 --size 64``:
    12 videos (6 order pairs) of 64 x 64 px, 5 fps, 12 s (60 frames), 3 captions each
    (36 captions), splits ``train`` and ``test``. Use it as ``--annotations``.
``synth_extract_argv`` -> Callable[[Path, *str], list[str]]
    ``argv(output, *extra)``: the ``vtrbench extract`` arguments that made ``synth_cache``,
    with another ``--output`` (and extra options appended).
``synth_cache`` -> Path
    The HDF5 cache of ``synth_dir`` made through ``main(synth_extract_argv(path))``: model
    ``vtrbench-tiny`` with random weights (``--pretrained none``), 12 frames per video,
    ``max_words`` 32, masks from the dataset's known roles, ``--chunk-size 2 --workers 0``.
    vtrbench builds ``--pretrained none`` weights from a fixed seed isolated from torch's
    global RNG (test_encode.py::test_random_weights_do_not_depend_on_global_rng), so any
    process that extracts the same dataset gets bit-identical features; the tests seed the
    global RNG with other values on purpose to keep that claim tested.
``tiny_clip`` -> vtrbench.extract.encode.LoadedClip
    ``load_clip("vtrbench-tiny", "none")`` (64 px
    images, 64-d embeddings, QuickGELU).
``run_cli`` -> Callable[..., CliResult]
    ``run_cli(*argv)`` runs the real entry point ``vtrbench.cli.main`` in-process and returns
    a ``CliResult`` (``code``, ``out``, ``err``, ``text`` = both) with stdout and stderr
    captured. The console is made 1000 columns wide so that rich never wraps a message (or
    a long tmp path) across lines. Usable from module-scoped fixtures too.

The session also runs torch single-threaded (``OMP_NUM_THREADS=1`` unless already set,
before anything imports torch; subprocesses inherit it): the test machines are small
and shared, and with 2 OpenMP threads on a loaded 2-core machine a 4-frame forward of
vtrbench-tiny took 0.4 s instead of 2 ms (spin-waiting threads).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TORCH_SEED = 0
TINY_MODEL = "vtrbench-tiny"
SYNTH_VIDEOS = 12
SYNTH_CAPTIONS_PER_VIDEO = 3
SYNTH_SIZE = 64
SYNTH_FPS = 5
SYNTH_SECONDS = 12


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def invoke_cli(*argv: Any) -> CliResult:
    """Run ``vtrbench.cli.main(argv)`` in-process; stdout and stderr are captured, 1000 columns wide."""
    from vtrbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "1000"  # rich reads it when a console is made (one per message)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        if old_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old_columns
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliResult]:
    return invoke_cli


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vtrbench.cli import main

    out = tmp_path_factory.mktemp("synth") / "data"
    code = main(
        [
            "synth",
            str(out),
            "--videos",
            str(SYNTH_VIDEOS),
            "--seed",
            "0",
            "--size",
            str(SYNTH_SIZE),
            "--fps",
            str(SYNTH_FPS),
            "--seconds",
            str(SYNTH_SECONDS),
            "--captions-per-video",
            str(SYNTH_CAPTIONS_PER_VIDEO),
            "--quiet",
        ]
    )
    assert code == 0, "vtrbench synth failed"
    return out


@pytest.fixture(scope="session")
def synth_extract_argv(synth_dir: Path) -> Callable[..., list[str]]:
    def argv(output: Path, *extra: str) -> list[str]:
        return [
            "extract",
            "--dataset",
            "synthetic",
            "--annotations",
            str(synth_dir),
            "--model",
            TINY_MODEL,
            "--pretrained",
            "none",
            "--device",
            "cpu",
            "--chunk-size",
            "2",
            "--workers",
            "0",
            "--quiet",
            "--output",
            str(output),
            *extra,
        ]

    return argv


@pytest.fixture(scope="session")
def synth_cache(
    tmp_path_factory: pytest.TempPathFactory, synth_extract_argv: Callable[..., list[str]]
) -> Path:
    import torch

    from vtrbench.cli import main

    path = tmp_path_factory.mktemp("synth_cache") / "synthetic_tiny.h5"
    torch.manual_seed(TORCH_SEED)  # arbitrary: the cache must not depend on it
    code = main(synth_extract_argv(path))
    assert code == 0 and path.is_file(), "vtrbench extract of the synthetic fixture failed"
    return path


@pytest.fixture(scope="session")
def tiny_clip() -> Any:

    from vtrbench.extract.encode import load_clip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weights warning and open_clip's own
        return load_clip(TINY_MODEL, "none", device="cpu")
