"""Study storages as files (issue 28): read-only commands never write, damaged and unfit files are one
line, and ``ablate --tuned`` runs a chosen subset of the study's cells and refuses what it cannot honour.

The study is a real tiny one (meanp x infonce,dsl; 2 trials each on the synthetic cache); its best
trials are read back with plain ``sqlite3`` SQL, not through vtrbench.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

SPACE = """
[train]
epochs = {low = 1, high = 2}
batch_size = {choices = [4, 8]}
"""
OLD = 1_500_000_000 * 10**9  # an mtime (ns) that any write moves


def _tune_args(
    cache: Path, folder: Path, *extra: Any, losses: str = "infonce", space: str = SPACE
) -> list[Any]:
    (folder / "space.toml").write_text(space)
    return [
        "tune", "--cache", cache, "--heads", "meanp", "--losses", losses, "--trials", 2,
        "--max-epochs", 2, "--val-fraction", 0.25, "--space", folder / "space.toml",
        "--device", "cpu", "--quiet", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def study(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("optuna")
    from tests.conftest import invoke_cli

    folder = tmp_path_factory.mktemp("tuned")
    path = folder / "s.db"
    r = invoke_cli(*_tune_args(synth_cache, folder, "--study", path, losses="infonce,dsl"))
    assert r.code == 0, r.text
    return path


def _copy(study: Path, tmp_path: Path) -> Path:
    out = tmp_path / "s.db"
    shutil.copy2(study, out)
    return out


def _ablate(cache: Path, study: Path, results: Path, *extra: Any) -> list[Any]:
    return ["ablate", "--cache", cache, "--tuned", study, "--seeds", "0", "--device", "cpu",
            "--results", results, "--quiet", "--qb-bank", "8", *extra]  # fmt: skip


def _one_error_line(r: Any, *words: str) -> None:
    assert r.code != 0, r.text
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.err
    for w in words:
        assert w in lines[0], (w, lines[0])


def _best_lr(study: Path, cell: str) -> float:
    """The lr of the best COMPLETE trial (highest value, earliest on ties) of ``cell``, by SQL."""
    with sqlite3.connect(study) as db:
        (lr,) = db.execute(
            "SELECT p.param_value FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "JOIN trial_values v ON v.trial_id = t.trial_id "
            "JOIN trial_params p ON p.trial_id = t.trial_id AND p.param_name = 'lr' "
            "WHERE s.study_name = ? AND t.state = 'COMPLETE' ORDER BY v.value DESC, t.number ASC LIMIT 1",
            (f"vtrbench:{cell}",),
        ).fetchone()
    return float(lr)


# ---------------------------------------------------------------- read-only commands never write


def _make(kind: str, study: Path, tmp_path: Path) -> Path:
    if kind == "empty":
        (tmp_path / "empty.db").write_bytes(b"")
        return tmp_path / "empty.db"
    if kind == "foreign":
        (tmp_path / "notes.db").write_text("not an SQLite file\n" * 50)
        return tmp_path / "notes.db"
    path = _copy(study, tmp_path)
    if kind == "damaged":
        data = bytearray(path.read_bytes())
        start = len(data) // 4  # past the header page: SQLite reads the file as a database
        data[start : start + 4096] = bytes(b ^ 0xFF for b in data[start : start + 4096])
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("command", ["status", "ablate"])
@pytest.mark.parametrize(
    "kind, words",
    [
        ("empty", ("empty.db", "empty file")),
        ("foreign", ("notes.db", "not an SQLite study file")),
        ("damaged", ("s.db", "this file is damaged (not a readable SQLite study)")),
        ("valid", None),
    ],
)
def test_read_only_commands_leave_the_study_file_as_it_was(
    run_cli: Any, synth_cache: Path, study: Path, tmp_path: Path, command: str, kind: str, words: Any
) -> None:
    path = _make(kind, study, tmp_path)
    os.utime(path, ns=(OLD, OLD))
    before, beside = path.read_bytes(), set(os.listdir(tmp_path))
    argv = ["tune", "--status", path] if command == "status" else _ablate(synth_cache, path, tmp_path / "res")
    r = run_cli(*argv)
    if words is None:
        assert r.code == 0, r.text
    else:
        _one_error_line(r, *words)
    assert path.read_bytes() == before and os.stat(path).st_mtime_ns == OLD
    assert set(os.listdir(tmp_path)) - beside <= {"res"}  # no -journal, -wal or lock file left


def test_tune_on_a_damaged_study_is_one_line(
    run_cli: Any, synth_cache: Path, study: Path, tmp_path: Path
) -> None:
    path = _make("damaged", study, tmp_path)
    before = path.read_bytes()
    r = run_cli(*_tune_args(synth_cache, tmp_path, "--study", path))
    _one_error_line(r, "s.db: this file is damaged")
    assert path.read_bytes() == before


def test_journal_files_read_only_and_unfit(run_cli: Any, synth_cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    missing = tmp_path / "none.log"
    _one_error_line(run_cli("tune", "--status", f"journal:{missing}"), "none.log", "not found")
    assert not missing.exists()
    bad = tmp_path / "bad.log"
    bad.write_text('{"op_code": 0}\nnot json\n')
    _one_error_line(run_cli("tune", "--status", f"journal:{bad}"), "not a readable Optuna journal")
    for target, word in (
        ("/dev/null", "not a regular file"),
        (tmp_path, "folder"),
        ("/proc/self/status", "/proc"),
    ):
        r = run_cli(*_tune_args(synth_cache, tmp_path, "--storage", f"journal:{target}"))
        _one_error_line(r, str(target) if target != "/proc/self/status" else "pseudo-file system", word)


def test_a_journal_study_reads_back_without_a_write(run_cli: Any, synth_cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    journal = tmp_path / "j.log"
    assert run_cli(*_tune_args(synth_cache, tmp_path, "--storage", f"journal:{journal}")).code == 0
    os.utime(journal, ns=(OLD, OLD))
    before = journal.read_bytes()
    r = run_cli("tune", "--status", f"journal:{journal}")
    assert r.code == 0 and "meanp+infonce" in r.out, r.text
    assert journal.read_bytes() == before and os.stat(journal).st_mtime_ns == OLD
    assert sorted(os.listdir(tmp_path)) == ["j.log", "space.toml"]  # no lock file left behind


# ---------------------------------------------------------------- ablate --tuned: cells and options


def test_ablate_tuned_runs_the_chosen_cells_only(
    run_cli: Any, synth_cache: Path, study: Path, tmp_path: Path
) -> None:
    results = tmp_path / "res"
    r = run_cli(*_ablate(synth_cache, study, results, "--losses", "dsl"))
    assert r.code == 0 and "1 ran" in r.err, r.text
    (only,) = sorted(results.rglob("*.json"))
    data = json.loads(only.read_text())
    assert (data["head"], data["loss"]) == ("meanp", "dsl")
    assert data["config"]["lr"] == pytest.approx(_best_lr(study, "meanp+dsl"), rel=1e-12)
    _one_error_line(
        run_cli(*_ablate(synth_cache, study, results, "--heads", "camoe")),
        "--heads camoe",
        "meanp+dsl, meanp+infonce",
    )
    _one_error_line(
        run_cli(*_ablate(synth_cache, study, results, "--losses", "triplet,dsl")),
        "--losses triplet",
        "meanp+infonce",
    )
    assert len(list(results.rglob("*.json"))) == 1


@pytest.mark.parametrize(
    "extra",
    [
        ("--head-option", "logit_scale=fixed"),
        ("--lr", "0.5"),
        ("--epochs", "5"),  # the default spelled out: the study still fixes it
        ("--temperature", "0.05"),
        ("--test-split", "test"),
        ("--experts", "fusion"),
    ],
)
def test_ablate_tuned_refuses_what_the_study_fixes(
    run_cli: Any, synth_cache: Path, study: Path, tmp_path: Path, extra: tuple[str, str]
) -> None:
    r = run_cli(*_ablate(synth_cache, study, tmp_path / "res", *extra))
    _one_error_line(r, f"{extra[0]} cannot be combined with --tuned")
    assert not (tmp_path / "res").exists()


# ---------------------------------------------------------------- --space tables for cells not tuned


@pytest.mark.parametrize(
    "table, words",
    [
        ("[head.nosuchhead]\nlayers = {choices = [1]}", ("[head.nosuchhead]", "unknown head 'nosuchhead'")),
        ("[head.meanpp]\nlayers = {choices = [1]}", ("did you mean 'meanp'",)),
        ("[head.camoe]\nlayers = {choices = [1, 2]}", ("head camoe is not tuned", "--heads meanp")),
        ("[loss.dsl]\ntemperature = {low = -5.0, high = 1.0}", ("loss dsl is not tuned", "--losses infonce")),
    ],
)
def test_space_tables_for_heads_or_losses_not_tuned_are_refused(
    run_cli: Any, synth_cache: Path, tmp_path: Path, table: str, words: tuple[str, ...]
) -> None:
    pytest.importorskip("optuna")
    path = tmp_path / "s.db"
    r = run_cli(*_tune_args(synth_cache, tmp_path, "--study", path, space=SPACE + table + "\n"))
    _one_error_line(r, "--space", *words)
    assert not path.exists()
