"""Issue 19, classes 3-5: --shard spellings, what a refused shard is told to do, locks between shards,
unsharded runs and assembly, and torchrun (a short failure, ranks that die with their agent)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.test_extract import assert_same_cache
from vtrbench.cache import parts_dir
from vtrbench.errors import VtrbenchError
from vtrbench.extract import pipeline
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
    with pipeline._lock(out, Shard(0, 2)):  # shard 0/2 is running
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
    with pipeline._lock(out):  # an unsharded run (or an assembly) is running: a shard is refused
        r = run_cli(*synth_extract_argv(out, "--shard", "0/2"))
        assert r.code == 2 and "unsharded or assembling" in r.err, r.err
    assert run_cli(*synth_extract_argv(out)).code == 0  # unsharded, alone: finishes the shards' work
    assert_same_cache(out, synth_cache)
    assert not list(tmp_path.glob("*.lock"))


def test_the_last_shard_of_two_finishing_together_leaves_assembly_to_the_other(
    run_cli: Callable[..., Any], synth_extract_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    """A shard that finds every part present but the cache lock taken says who assembles."""
    out = tmp_path / "c.h5"
    assert run_cli(*synth_extract_argv(out, "--shard", "0/2")).code == 0
    with pipeline._lock(out, Shard(0, 2)):  # shard 0/2 runs again: it will find all parts and assemble
        r = run_cli(*synth_extract_argv(out, "--shard", "1/2"))
    assert r.code == 0 and "--assemble" in r.err and "rank 0" not in r.err, r.err
    manifest = json.loads((parts_dir(out) / "manifest.json").read_text())
    assert len(manifest["video_ids"]) == 12


def test_lock_files_are_private_to_their_process() -> None:
    """Decode workers close inherited lock fds (the set this module keeps must track both locks)."""
    assert not pipeline._LOCK_FDS
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"vtrbench-lock-{os.getpid()}.h5"
    with pipeline._lock(out, Shard(1, 3)):
        assert len(pipeline._LOCK_FDS) == 2
    assert not pipeline._LOCK_FDS and not Path(f"{out}.lock").exists()
