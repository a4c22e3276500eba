"""Issue 19, classes 3-5: --shard spellings, what a refused shard is told to do, locks between shards,
unsharded runs and assembly, and torchrun (a short failure, ranks that die with their agent)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.extract.test_extract import assert_same_cache
from vtrbench.cache import parts_dir
from vtrbench.errors import VtrbenchError
from vtrbench.extract import locks
from vtrbench.shard import Shard, parse_shard

# ------------------------------------------------------------------ spellings


@pytest.mark.parametrize(
    ("value", "mention"),
    [("", "empty"), ("   ", "empty"), ("1/0", "0 <= i < n"), ("2/2", "0 <= i < n"), ("-1/2", "whole numbers"),
     ("a/b", "whole numbers"), ("1/2/3", "whole numbers"), ("/4", "whole numbers"), ("1", "whole numbers"),
     ("0/0", "0 <= i < n"), ("1_0/20", "whole numbers"), ("\u0661/2", "whole numbers"),
     ("+1/2", "whole numbers"), ("0.5/2", "whole numbers")],
)  # fmt: skip
def test_bad_shard_spellings_are_one_line(value: str, mention: str) -> None:
    with pytest.raises(VtrbenchError) as info:
        parse_shard(value)
    assert "--shard" in str(info.value) and mention in str(info.value) and "\n" not in str(info.value)


def test_spaces_around_the_numbers_are_harmless() -> None:
    assert parse_shard(" 0/2") == parse_shard("0 / 2 ") == Shard(0, 2)
    assert parse_shard(None) is None


def test_an_empty_shard_does_not_run_unsharded(
    run_cli: Callable[..., Any], synth_extract_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    """`--shard $SLURM_ARRAY_TASK_ID/4` with the variable unset, and `--shard ''`: refused, nothing made."""
    out = tmp_path / "c.h5"
    for value in ("", "/4"):
        r = run_cli(*synth_extract_argv(out, "--shard", value))
        assert r.code == 2 and "--shard" in r.err and "Traceback" not in r.text, r.err
    assert not out.exists() and not parts_dir(out).exists()
    r = run_cli("ablate", "--cache", str(tmp_path / "absent.h5"), "--heads", "meanp", "--shard", "")
    assert r.code == 2 and "--shard is empty" in r.err, r.err


# ------------------------------------------------------------------ what a refused shard is told


def test_a_shard_with_other_options_is_told_what_to_do_instead(
    run_cli: Callable[..., Any], synth_extract_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "c.h5"
    assert run_cli(*synth_extract_argv(out, "--shard", "0/2")).code == 0
    r = run_cli(*synth_extract_argv(out, "--shard", "1/2", "--max-words", "16"))
    assert r.code == 2 and "max_words" in r.err, r.err
    error = next(ln for ln in r.err.splitlines() if ln.startswith("error:"))
    assert "use --overwrite" not in error and "options the other shards used" in error, error
    assert str(parts_dir(out)) in error and "--overwrite works only unsharded" in error
    # an unreadable manifest: delete the parts folder, not --overwrite
    (parts_dir(out) / "manifest.json").write_text("{")
    r = run_cli(*synth_extract_argv(out, "--shard", "1/2"))
    error = next(ln for ln in r.err.splitlines() if ln.startswith("error:"))
    assert r.code == 2 and "unreadable" in error and "delete" in error and "use --overwrite" not in error


def test_a_shard_of_another_config_than_the_finished_cache_is_told_what_to_do(
    run_cli: Callable[..., Any],
    synth_cache: Path,
    synth_extract_argv: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "c.h5"
    out.write_bytes(synth_cache.read_bytes())
    r = run_cli(*synth_extract_argv(out, "--shard", "0/2", "--max-words", "16"))
    error = next(ln for ln in r.err.splitlines() if ln.startswith("error:"))
    assert r.code == 2 and "different config" in error and "use --overwrite" not in error, error
    assert "another --output" in error and out.read_bytes() == synth_cache.read_bytes()


# ------------------------------------------------------------------ locks


def test_an_unsharded_run_beside_a_running_shard_is_refused_in_one_line(
    run_cli: Callable[..., Any],
    synth_cache: Path,
    synth_extract_argv: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """The reported failure: `cannot write c.h5.parts/videos-00000.h5: No such file or directory` (the
    unsharded run deleted the running shard's parts folder). The shard's lock is held here, in-process
    (flock locks belong to open files, so this process's own run sees them as another's)."""
    out = tmp_path / "c.h5"
    assert run_cli(*synth_extract_argv(out, "--shard", "1/2")).code == 0
    before = {p.name: p.read_bytes() for p in parts_dir(out).iterdir()}
    with locks.output_lock(out, Shard(0, 2)):  # shard 0/2 is running
        r = run_cli(*synth_extract_argv(out))
        assert r.code == 2 and "another `vtrbench extract`" in r.err and "Traceback" not in r.text, r.err
        assert len([ln for ln in r.err.splitlines() if ln.startswith("error:")]) == 1
        r = run_cli(*synth_extract_argv(out, "--assemble"))
        assert r.code == 2 and "another `vtrbench extract`" in r.err, r.err
        r = run_cli(*synth_extract_argv(out, "--shard", "0/2"))  # the same shard twice
        assert r.code == 2 and "shard 0/2" in r.err, r.err
        # another shard may run beside it (it finds shard 0/2's parts missing and does not assemble)
        r = run_cli(*synth_extract_argv(out, "--shard", "1/2"))
        assert r.code == 0 and "still missing" in r.err, r.err
        assert Path(f"{out}.lock").exists()  # shard 1/2 left: the lock file stays for shard 0/2
    assert {p.name: p.read_bytes() for p in parts_dir(out).iterdir()} == before
    assert not Path(f"{out}.lock").exists()  # the last one out removed it
    with locks.output_lock(out):  # an unsharded run (or an assembly) is running: a shard is refused
        r = run_cli(*synth_extract_argv(out, "--shard", "0/2"))
        assert r.code == 2 and "unsharded or assembling" in r.err, r.err
    assert run_cli(*synth_extract_argv(out)).code == 0  # unsharded, alone: finishes the shards' work
    assert_same_cache(out, synth_cache)
    assert not list(tmp_path.glob("*.lock"))


@pytest.mark.slow  # two shard runs for one message; the lock semantics are covered by the test above
def test_the_last_shard_of_two_finishing_together_leaves_assembly_to_the_other(
    run_cli: Callable[..., Any], synth_extract_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    """A shard that finds every part present but the cache lock taken says who assembles."""
    out = tmp_path / "c.h5"
    assert run_cli(*synth_extract_argv(out, "--shard", "0/2")).code == 0
    with locks.output_lock(out, Shard(0, 2)):  # shard 0/2 runs again: it will find all parts and assemble
        r = run_cli(*synth_extract_argv(out, "--shard", "1/2"))
    assert r.code == 0 and "--assemble" in r.err and "rank 0" not in r.err, r.err
    manifest = json.loads((parts_dir(out) / "manifest.json").read_text())
    assert len(manifest["video_ids"]) == 12


def test_lock_files_are_private_to_their_process() -> None:
    """Decode workers close inherited lock fds (the set this module keeps must track both locks)."""
    assert not locks.LOCK_FDS
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"vtrbench-lock-{os.getpid()}.h5"
    with locks.output_lock(out, Shard(1, 3)):
        assert len(locks.LOCK_FDS) == 2
    assert not locks.LOCK_FDS and not Path(f"{out}.lock").exists()


# ------------------------------------------------------------------ torchrun


def test_a_usage_error_under_torchrun_is_said_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vtrbench.shard import refuse, resolve

    error_file = tmp_path / "error.json"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    monkeypatch.setattr("vtrbench.shard.die_with_agent", lambda: None)  # this process has no agent
    monkeypatch.setattr("vtrbench.shard.SIBLING_WAIT_S", 0.0)  # nor sibling ranks to wait for
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit) as quiet:  # rank 1 leaves without a word and without a failure
        resolve("0/2", "cpu")
    assert quiet.value.code == 0 and not error_file.exists()
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(VtrbenchError, match="--shard cannot be combined with torchrun"):
        resolve("0/2", "cpu")
    # torchrun's summary shows the line as the root cause (the layout of torch's own error files)
    record = json.loads(error_file.read_text())["message"]
    assert record["message"] == record["extraInfo"]["py_callstack"]
    assert record["message"].startswith("error: --shard cannot be combined with torchrun")
    with pytest.raises(VtrbenchError):  # outside torchrun: a plain error, no file
        refuse(None, "plain")


def test_an_ablate_option_error_under_torchrun_is_said_once_but_a_grid_file_error_by_each_rank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vtrbench.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(tmp_path / "error.json"))
    monkeypatch.setattr("vtrbench.shard.SIBLING_WAIT_S", 0.0)
    argv = ["ablate", "--cache", str(tmp_path / "none.h5"), "--results", str(tmp_path / "r"), "--quiet"]
    monkeypatch.setenv("RANK", "1")
    assert main([*argv, "--seeds", "x"]) == 0  # options are the same on every rank: rank 0 says it
    said = capsys.readouterr()
    assert said.out + said.err == "" and not (tmp_path / "error.json").exists()
    # a grid file may differ between machines (a node without it): every rank says what it found
    assert main([*argv, "--grid", str(tmp_path / "missing.toml")]) == 2
    assert "grid file not found" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "0")
    assert main([*argv, "--seeds", "x"]) == 2
    assert "--seed(s) must be integers" in capsys.readouterr().err
    assert "--seed(s) must be integers" in (tmp_path / "error.json").read_text()


_ORPHAN = r"""
import os, subprocess, sys, time
if sys.argv[1] == "parent":
    child = subprocess.Popen([sys.executable, "-c", sys.argv[2], "child", sys.argv[2], sys.argv[3]])
    print(child.pid, flush=True)
    time.sleep(600)
else:
    from vtrbench.shard import die_with_agent
    die_with_agent()
    open(sys.argv[3], "w").close()
    time.sleep(600)
"""


def test_a_rank_dies_with_its_agent(tmp_path: Path) -> None:
    """kill -9 of the parent (torchrun's agent) takes the child (a rank) with it, within seconds."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, "parent", _ORPHAN, str(tmp_path / "ready")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while not (tmp_path / "ready").exists():  # the child has asked for the signal
            assert time.monotonic() < deadline
            time.sleep(0.02)
        stat = Path(f"/proc/{child}/stat")
        assert stat.exists()
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child outlived its killed parent"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.slow
@pytest.mark.parametrize(("point", "victim"), [("part", "agent"), ("barrier", "rank1")])
def test_torchrun_kill_leaves_no_process_and_resumes(tmp_path: Path, point: str, victim: str) -> None:
    """kill -9 of torchrun's agent (or a rank): every process of the run gone within a minute (the
    report: both ranks still at the gloo barrier 10 minutes later), and a torchrun rerun gives the
    single-process cache. The fault suite's case, run here on its own fixtures (~1-2 min)."""
    from benchmarks.faults.core import Context
    from benchmarks.faults.shard_cases import _torchrun_kill_case

    case = _torchrun_kill_case("test", point, victim)
    folder = tmp_path / "case"
    folder.mkdir()
    outcome = case.run(folder, Context(tmp_path / "ctx"))
    assert outcome.kind == "handled" and outcome.identical_resume, outcome.detail
