"""Files vtrbench writes honour the umask (issue 30): a result, report, page or checkpoint gets the mode a
plain ``open(path, "w")`` gives a new file, not mkstemp's 0600 that kept a shared results folder or a
mailed page from the group.

The oracle is a plain ``open`` under the same umask. The umask is set for the test and restored
(os.umask is process-wide; these tests start no threads of their own).
"""

from __future__ import annotations

import importlib.util
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from vtrbench import results as results_mod
from vtrbench.results import atomic_write_bytes, atomic_write_text


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o027, 0o002])
def test_an_atomic_write_gets_the_mode_of_a_plain_open(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        plain = tmp_path / "plain.json"
        with open(plain, "w") as f:
            f.write("{}")
        atomic_write_text(tmp_path / "new.json", "{}")
        atomic_write_bytes(tmp_path / "sub" / "new.pt", b"\0")
        # an earlier release's 0600 file is replaced by one with the umask's mode
        old = tmp_path / "old.md"
        old.write_text("old")
        old.chmod(0o600)
        atomic_write_text(old, "new")
    assert mode(plain) == 0o666 & ~mask
    for path in (tmp_path / "new.json", tmp_path / "sub" / "new.pt", old):
        assert mode(path) == mode(plain), path
    assert old.read_text() == "new"
    assert not [p for p in tmp_path.rglob(".*.tmp")]  # no temporary file left


def test_off_linux_the_umask_read_at_import_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results_mod, "_umask_now", lambda: None)  # no /proc/self/status
    monkeypatch.setattr(results_mod, "_UMASK_AT_IMPORT", 0o027)
    atomic_write_text(tmp_path / "r.json", "{}")
    assert mode(tmp_path / "r.json") == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def _every_writer(run_cli: Callable[..., Any], argv: Callable[..., list[str]], root: Path) -> list[str]:
    """Run each command that writes a file, as a user would; returns what was run."""
    cache, results, reports = root / "features" / "c.h5", root / "results", root / "reports"
    done = []

    def run(*args: Any) -> None:
        r = run_cli(*args)
        assert r.code == 0, f"{args[0]}: {r.text[-1500:]}"
        done.append(str(args[0]))

    fast = "--epochs 1 --batch-size 8 --device cpu --quiet".split()
    run(*argv(cache))  # the cache, written through its parts
    ckpt = root / "ckpt" / "meanp.pt"
    run("train", "--cache", cache, "--head", "meanp", "--loss", "infonce", "--results", results, *fast,
        "--save-checkpoint", ckpt)  # fmt: skip
    run("ablate", "--cache", cache, "--heads", "meanp", "--losses", "dsl", "--seeds", "0",
        "--results", results, *fast)  # fmt: skip
    run("eval", "--cache", cache, "--head", "zeroshot", "--device", "cpu", "--results", results)
    for fmt, name in (("md", "report.md"), ("latex", "table.tex"), ("csv", "r.csv"), ("json", "r.json")):
        run("report", results, "--format", fmt, "--output", reports / name, "--baseline", "meanp + infonce")
    if importlib.util.find_spec("matplotlib") is not None:
        run("report", results, "--output", reports / "again.md", "--plot", reports / "fig.png")
    run("browse", results, "--cache", cache, "--output", root / "site")
    if importlib.util.find_spec("optuna") is not None:
        space = root / "space.toml"
        space.write_text("[train]\nepochs = {low = 1, high = 1}\n")
        run("tune", "--cache", cache, "--heads", "meanp", "--losses", "infonce", "--trials", 1,
            "--max-epochs", 1, "--val-fraction", 0.25, "--study", root / "study.db", "--space", space,
            "--device", "cpu", "--quiet")  # fmt: skip
    return done


def test_every_file_a_run_writes_is_readable_by_the_group(
    run_cli: Callable[..., Any], synth_extract_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    # umask 027: group may read, others nothing; neither 0600 (mkstemp) nor a fixed 0644 passes
    root = tmp_path / "shared"
    root.mkdir()
    with umask(0o027):
        done = _every_writer(run_cli, synth_extract_argv, root)
    files = [p for p in root.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".h5", ".json", ".pt", ".toml", ".md", ".tex", ".csv", ".html"} <= kinds, kinds
    wrong = {str(p.relative_to(root)): oct(mode(p)) for p in files if mode(p) != 0o640}
    assert not wrong, wrong
    folders = {
        str(p.relative_to(root)): oct(mode(p)) for p in root.rglob("*") if p.is_dir() and mode(p) != 0o750
    }
    assert not folders, folders
    assert "extract" in done and "browse" in done
