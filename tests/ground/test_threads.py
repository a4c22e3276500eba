"""Thread count: the load-based default, --threads validation, and the record in results."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vtrbench.cli import main
from vtrbench.errors import VtrbenchError
from vtrbench.results import read_result
from vtrbench.threads import auto_threads, set_threads, threads_provenance


@pytest.mark.parametrize(
    ("default", "cores", "load", "want"),
    [
        (2, 2, 0.1, 2),  # idle: torch's default
        (2, 2, 0.6, 1),  # one core busy
        (2, 2, 7.5, 1),  # oversubscribed: never below one
        (8, 16, 3.0, 8),  # never above torch's default
        (4, 4, None, 4),  # no load average (not Linux): torch's default
    ],
)
def test_auto_threads_takes_the_free_cores(default, cores, load, want):
    n, rule = auto_threads(default, cores, load)
    assert n == want and (str(want) in rule)


def test_set_threads_is_recorded():
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == {"threads": 1, "threads_rule": "--threads"}
        assert threads_provenance() == {"threads": 1, "threads_rule": "--threads"}
        chosen = set_threads(None)
        assert chosen["threads_rule"].startswith(("auto:", "torch default"))
        assert threads_provenance()["threads"] == torch.get_num_threads() == chosen["threads"]
    finally:
        torch.set_num_threads(before)


def test_threads_is_validated_like_other_run_options(tmp_path: Path, capsys):
    from vtrbench.runs.spec import RunSpec

    for bad in (0, -2, 1.5, "2", True):
        with pytest.raises(VtrbenchError, match="threads must be an integer >= 1"):
            RunSpec(cache_path=tmp_path, head="meanp", loss="infonce", threads=bad)
    argv = ["train", "--cache", str(tmp_path / "none.h5"), "--head", "meanp", "--threads", "0"]
    assert main([*argv, "--results", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr()
    assert "--threads must be an integer >= 1, got 0" in err.out + err.err
    assert "Traceback" not in err.out + err.err


def test_train_records_threads_in_provenance(synth_cache: Path, tmp_path: Path):
    before = torch.get_num_threads()
    fast = ["--device", "cpu", "--epochs", "1", "--batch-size", "16", "--quiet", "--head", "meanp"]
    try:
        argv = ["train", "--cache", str(synth_cache), "--results", str(tmp_path), "--threads", "1", *fast]
        assert main(argv) == 0
    finally:
        torch.set_num_threads(before)
    prov = read_result(next(tmp_path.rglob("*.json")))["provenance"]
    assert prov["threads"] == 1 and prov["threads_rule"] == "--threads"
