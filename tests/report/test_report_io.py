"""Reading results and the ``report`` command line: every malformed result file is one VtrbenchError
naming the file (train/eval rely on that to redo it), outputs are checked before the work, the
terminal gets tables that fit and a pipe gets plain Markdown."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from vtrbench.cli import main
from vtrbench.errors import VtrbenchError
from vtrbench.results import discover, read_result

FIXTURE = Path(__file__).parents[1] / "fixtures" / "results" / "msrvtt"
GOOD = FIXTURE / "msrvtt.meanp.infonce.016d6569.s0.json"


def _good() -> dict:
    return json.loads(GOOD.read_text())


def _with(key: str, value: object) -> str:
    data = _good()
    if value is KeyError:
        data.pop(key)
    else:
        data[key] = value
    return json.dumps(data)


def _metric(token: str) -> str:
    data = _good()
    data["metrics"]["raw"]["t2v"]["R@1"] = "__X__"
    return json.dumps(data).replace('"__X__"', token)


MALFORMED = {
    "truncated": GOOD.read_text()[:300],
    "empty": "",
    "nested": "[" * 100_000 + "]" * 100_000,
    "array": "[1, 2]",
    "no-run-id": _with("run_id", KeyError),
    "no-metrics": _with("metrics", KeyError),
    "wrong-schema": _with("schema", 99),  # 1 and 2 are readable (schema 2 adds per_query)
    "seed-string": _with("seed", "0"),
    "seed-missing": _with("seed", KeyError),
    "seed-bool": _with("seed", False),
    "nan": _metric("NaN"),
    "infinity": _metric("-Infinity"),
    "overflow": _metric("1e400"),
    "metric-text": _metric('"high"'),
    "huge-integer": _metric("7" * 6000),
    "metrics-list": _with("metrics", []),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_read_result_refuses_malformed_files_naming_them(tmp_path, name):
    path = tmp_path / f"{name}.json"
    path.write_text(MALFORMED[name])
    with pytest.raises(VtrbenchError) as err:
        read_result(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_read_result_refuses_bytes_folders_and_missing_files(tmp_path):
    latin = tmp_path / "latin.json"
    latin.write_bytes(GOOD.read_text().replace("meanp", "mé").encode("latin-1"))
    folder = tmp_path / "folder.json"
    folder.mkdir()
    for path, pattern in (
        (latin, "not UTF-8"),
        (folder, "is a folder"),
        (tmp_path / "missing.json", "not found"),
    ):
        with pytest.raises(VtrbenchError, match=pattern):
            read_result(path)


def test_read_result_accepts_the_fixture_and_records_its_path():
    data = read_result(GOOD)
    assert data["run_id"] == _good()["run_id"] and data["_path"] == str(GOOD)


def test_discover_skips_folders_named_json(tmp_path):
    shutil.copy(GOOD, tmp_path / "a.json")
    (tmp_path / "b.json").mkdir()
    (tmp_path / ".tmp.json").write_text("{")
    assert discover([tmp_path]) == [tmp_path / "a.json"]


def _report(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["report", str(FIXTURE), *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())  # the console wraps long error lines


def test_unwritable_outputs_are_refused_before_the_work(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = _report(tmp_path, capsys, "--output", tmp_path / "file" / "t.md")
    assert code == 2 and "is a file, not a folder" in err
    (tmp_path / "dir.md").mkdir()
    code, _, err = _report(tmp_path, capsys, "--output", tmp_path / "dir.md")
    assert code == 2 and "is a folder" in err
    # --plot is checked before the table is written.
    code, _, err = _report(
        tmp_path, capsys, "--output", tmp_path / "t.md", "--plot", tmp_path / "file" / "f.png"
    )
    assert code == 2 and not (tmp_path / "t.md").exists()


def test_plot_without_matplotlib_names_the_extra(tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = _report(tmp_path, capsys, "--plot", tmp_path / "f.png", "--output", tmp_path / "t.md")
    assert code == 2
    assert "pip install 'vtrbench[plot]'" in err  # the console markup must not eat [plot]
    assert not (tmp_path / "t.md").exists()


def test_piped_output_is_plain_markdown(tmp_path, capsys):
    code, out, _ = _report(tmp_path, capsys, "--post", "raw")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| Method") and any(r.startswith("| CAMoE ") for r in rows)
    assert not any("…" in r for r in rows)


def test_terminal_output_fits_the_width():
    from rich.console import Console

    from vtrbench.report import build_report, load_results
    from vtrbench.report.terminal import print_report

    report = build_report(load_results([FIXTURE]), posts=("raw",))
    for width in (60, 80, 170):
        console = Console(width=width, record=True, force_terminal=True, color_system=None)
        print_report(report, console)
        text = console.export_text()
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= width
        assert "CAMoE" in text and "Zero-shot" in text and "t2v R@1" in text
        assert not any("…" in line for line in lines if "│" in line)
    assert "columns left out" not in text  # 170 columns hold every column


def test_report_imports_neither_torch_nor_the_cache():
    import subprocess

    code = (
        "import sys, vtrbench.report, vtrbench.report.terminal; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'h5py', 'open_clip', 'av') "
        "or m in ('vtrbench.cache', 'vtrbench.extract')]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "option, target",
    [
        ("--plot", "/proc/fig.png"),
        ("--plot", "/sys/fig.png"),
        ("--output", "/proc/x.md"),
        ("--output", "/sys/x/y/table.md"),
        ("--output", "/dev/null"),
    ],
)
def test_outputs_that_cannot_be_written_are_refused_before_the_table(tmp_path, capsys, option, target):
    # As root os.access says yes to all of these; the check must try the write itself.
    top = Path("/" + target.split("/")[1])
    if not top.exists():
        pytest.skip(f"no {top} here")
    code, out, err = _report(tmp_path, capsys, option, target)
    assert code == 2 and out == "", out[:200]
    assert err.startswith(f"error: {option} {target}:") and "Traceback" not in err


def test_the_output_check_leaves_nothing_behind(tmp_path, capsys):
    target = tmp_path / "new" / "deeper" / "t.md"
    from vtrbench.cli.report_cmds import check_output_path

    check_output_path(target, "--output")
    assert list(tmp_path.iterdir()) == []  # the folders and files it made to try are gone
    existing = tmp_path / "old.md"
    existing.write_text("keep me")
    check_output_path(existing, "--output")
    assert existing.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["old.md"]
    code, _, _ = _report(tmp_path, capsys, "--output", target, "--post", "raw")
    assert code == 0 and target.read_text().startswith("Provenance:")
