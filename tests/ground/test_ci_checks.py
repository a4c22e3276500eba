"""The CI's conflict-marker check (.ci/check-conflict-markers), run on throw-away git repositories."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "check-conflict-markers"
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

# Built from pieces so that this file itself never holds a marker at the start of a line.
LT, EQ, GT, BAR = "<" * 7, "=" * 7, ">" * 7, "|" * 7


def _repo(tmp_path: Path, files: dict[str, str], untracked: dict[str, str] | None = None) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    for name, text in (untracked or {}).items():
        (repo / name).write_text(text)
    return repo


def _check(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(repo)], capture_output=True, text=True)


def test_clean_files_pass_including_setext_underlines(tmp_path):
    repo = _repo(
        tmp_path,
        {
            "README.md": f"Title\n{EQ}\n\ntext\n\nSub\n-------\n",
            "docs/index.rst": f"{EQ}\nHeading\n{EQ}\n\n{EQ}=====\n",
            "code.py": f'MARK = "{LT} not at the start"\n# {GT} in a comment\n',
        },
        untracked={"scratch.md": f"{LT} HEAD\nx\n{EQ}\ny\n{GT} other\n"},  # untracked: not checked
    )
    done = _check(repo)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "text, line",
    [
        (f"a\n{LT} HEAD\nours\n{EQ}\ntheirs\n{GT} wt-rel\nb\n", 2),
        (f"{LT} HEAD\nours\n{BAR} merged common ancestors\nbase\n{EQ}\ntheirs\n{GT} feature\n", 1),
        (f"ours only\n{GT} wt-rel\n", 2),  # a half-resolved conflict: the closing marker left behind
        (f"x\n{LT}\n", 2),  # a marker without a branch name
    ],
)
def test_conflict_markers_fail_naming_file_and_line(tmp_path, text, line):
    repo = _repo(tmp_path, {"ok.md": "fine\n", "features/README.md": text})
    done = _check(repo)
    assert done.returncode == 1
    assert f"features/README.md:{line}:" in done.stderr
    assert "ok.md" not in done.stderr
    assert "error: merge-conflict markers" in done.stderr


def test_this_checkout_is_clean():
    done = _check(SCRIPT.parents[1])
    assert done.returncode == 0, done.stderr


def test_ci_runs_the_check_before_pytest():
    run = (SCRIPT.parent / "run").read_text()
    assert ".ci/check-conflict-markers" in run
    assert run.index(".ci/check-conflict-markers") < run.index("python -m pytest")
