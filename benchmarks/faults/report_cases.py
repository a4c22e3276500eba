"""Faults in ``vtrbench report``: malformed, duplicated, non-finite, non-UTF-8, nested and misplaced
result files, bad options, outputs that cannot be written, missing matplotlib, narrow terminals.

Every case works on a copy of the committed fixture results (tests/fixtures/results/msrvtt: 13
files, 7 systems), so none needs training and each takes well under a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.faults.core import (
    Case,
    CliRun,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    run_cli,
    run_cli_subprocess,
)

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "results" / "msrvtt"
VICTIM = "msrvtt.meanp.infonce.016d6569.s0.json"  # the file each damage case replaces or copies


def _results(tmp: Path) -> Path:
    folder = tmp / "results"
    shutil.copytree(FIXTURE, folder)
    return folder


def _damaged(write: Callable[[Path, dict[str, Any]], None]) -> Callable[[Path, Context], Outcome]:
    """A case that damages one result file (``write(path, original)``) and expects a one-line error
    naming that file, from both ``report`` and ``inspect``."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = _results(tmp)
        target = folder / "damaged.json"
        write(target, json.loads((folder / VICTIM).read_text()))
        outcome = expect_error(run_cli(["report", folder]), "damaged.json")
        if outcome.kind != "clear_error":
            return outcome
        return expect_error(run_cli(["inspect", target]), "damaged.json")

    return run


def _json(mutate: Callable[[dict[str, Any]], Any]) -> Callable[[Path, dict[str, Any]], None]:
    def write(path: Path, data: dict[str, Any]) -> None:
        out = mutate(data)
        path.write_text(out if isinstance(out, str) else json.dumps(data))

    return write


def _bytes(blob: bytes) -> Callable[[Path, dict[str, Any]], None]:
    return lambda path, data: path.write_bytes(blob)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data[key] = value

    return mutate


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def _metric(text: str) -> Callable[[dict[str, Any]], str]:
    """Replace t2v R@1 of the raw metrics by a raw JSON token (NaN, Infinity, 1e999, ...)."""

    def mutate(data: dict[str, Any]) -> str:
        data["metrics"]["raw"]["t2v"]["R@1"] = "__TOKEN__"
        return json.dumps(data).replace('"__TOKEN__"', text)

    return mutate


DAMAGES: dict[str, Callable[[Path, dict[str, Any]], None]] = {
    "truncated": lambda p, d: p.write_text(json.dumps(d)[:500]),
    "empty-file": _bytes(b""),
    "not-utf8": lambda p, d: p.write_bytes(json.dumps(d).replace("meanp", "mé").encode("latin-1")),
    "binary-garbage": _bytes(bytes(range(256)) * 4),
    "utf16-bom": lambda p, d: p.write_bytes(json.dumps(d).encode("utf-16")),
    "nested-arrays": _bytes(b"[" * 200_000 + b"]" * 200_000),
    "nested-inside-a-result": _json(
        lambda d: json.dumps(d)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    ),
    "top-level-array": _bytes(b"[1, 2, 3]"),
    "top-level-string": _bytes(b'"a result"'),
    "no-run-id": _json(_drop("run_id")),
    "no-metrics": _json(_drop("metrics")),
    "schema-2": _json(_set("schema", 2)),
    "schema-missing": _json(_drop("schema")),
    "seed-as-string": _json(_set("seed", "0")),
    "seed-missing": _json(_drop("seed")),
    "seed-bool": _json(_set("seed", True)),
    "seed-float": _json(_set("seed", 0.0)),
    "config-hash-missing": _json(_drop("config_hash")),
    "label-not-a-string": _json(_set("label", ["meanp"])),
    "metric-nan": _json(_metric("NaN")),
    "metric-infinity": _json(_metric("Infinity")),
    "metric-minus-infinity": _json(_metric("-Infinity")),
    "metric-overflow-1e999": _json(_metric("1e999")),
    "metric-string": _json(_metric('"50.0"')),
    "metric-5000-digits": _json(_metric("9" * 5000)),
    "metrics-a-list": _json(_set("metrics", [1, 2])),
    "metrics-empty": _json(_set("metrics", {})),
    "unknown-post-processing": _json(lambda d: d["metrics"].update(dls=d["metrics"]["raw"])),
    "rsum-nan": _json(
        lambda d: json.dumps(d).replace(
            '"RSum": ' + json.dumps(d["metrics"]["raw"]["RSum"]), '"RSum": NaN', 1
        )
    ),
    "ranks-with-zero": _json(lambda d: d["per_query_ranks"]["raw"]["t2v"].__setitem__(0, 0)),
    "ranks-with-string": _json(lambda d: d["per_query_ranks"]["raw"]["t2v"].__setitem__(0, "1")),
    "cache-not-an-object": _json(_set("cache", "features/x.h5")),
}


def _folder_named_json(tmp: Path, ctx: Context) -> Outcome:
    folder = _results(tmp)
    (folder / "sub.json").mkdir()
    (folder / "sub.json" / "note.txt").write_text("not a result")
    run = run_cli(["report", folder, "--post", "raw"])
    return expect_ok(run, lambda: None if "| CAMoE" in run.out else "the report lost its rows")


def _folder_named_json_given(tmp: Path, ctx: Context) -> Outcome:
    empty = tmp / "x.json"
    empty.mkdir()
    return expect_error(run_cli(["report", empty]), "x.json")


def _inspect_folder_named_json(tmp: Path, ctx: Context) -> Outcome:
    folder = tmp / "x.json"
    folder.mkdir()
    return expect_error(run_cli(["inspect", folder]), "x.json")


def _symlink_to_dev_zero(tmp: Path, ctx: Context) -> Outcome:
    link = tmp / "zero.json"
    link.symlink_to("/dev/zero")
    return expect_error(run_cli(["report", link]), "zero.json")


def _duplicate_copy(tmp: Path, ctx: Context) -> Outcome:
    folder = _results(tmp)
    shutil.copy(folder / VICTIM, folder / "copy-of-a-result.json")
    run = run_cli(["report", folder, "--post", "raw"])

    def check() -> str | None:
        row = next((ln for ln in run.out.splitlines() if ln.startswith("| meanP ") and "InfoNCE" in ln), "")
        if "|   2 |" not in row:
            return f"the copy counted as another seed: {row[:80]}"
        names = ("copy-of-a-result.json", VICTIM)
        noted = "duplicate result file" in run.out and any(n in run.out for n in names)
        return None if noted else "the note does not name the duplicate"

    return expect_ok(run, check)


def _duplicate_with_string_seed(tmp: Path, ctx: Context) -> Outcome:
    folder = _results(tmp)
    data = json.loads((folder / VICTIM).read_text())
    data["seed"] = "0"
    (folder / "same-run-string-seed.json").write_text(json.dumps(data))
    return expect_error(run_cli(["report", folder]), "same-run-string-seed.json", "seed")


def _duplicate_with_other_metrics(tmp: Path, ctx: Context) -> Outcome:
    folder = _results(tmp)
    data = json.loads((folder / VICTIM).read_text())
    # Other metrics that agree with the copy's own per-query ranks (a copy whose metrics contradict its
    # ranks is refused on its own, see report_input_cases): only the comparison can catch this one.
    data["metrics"]["raw"] = data["metrics"]["dsl"]
    data["per_query_ranks"]["raw"] = data["per_query_ranks"]["dsl"]
    (folder / "changed-copy.json").write_text(json.dumps(data))
    return expect_error(run_cli(["report", folder]), "changed-copy.json", VICTIM)


def _option_error(*argv: Any, mention: str = "") -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = _results(tmp)
        args = [a.replace("{tmp}", str(tmp)) if isinstance(a, str) else a for a in argv]
        return expect_error(run_cli(["report", folder, *args]), *([mention] if mention else []))

    return run


def _target_named(tmp: Path, ctx: Context) -> Outcome:
    """A valid --decomposition-target on schema-2 results with two losses: the section tests that cell
    and says it was named (the committed fixture is schema 1, so results are made in memory)."""
    from benchmarks.decomposition_sim import synthetic_results

    folder = tmp / "results"
    folder.mkdir()
    for i, r in enumerate(synthetic_results("hubs")):
        (folder / f"r{i}.json").write_text(json.dumps(r))
    run = run_cli(["report", folder, "--decomposition-target", "dsl:qbnorm"])

    def check() -> str | None:
        if "to (DSL, qbnorm)" not in run.out:
            return "the section does not test the named cell"
        named = "target named by the user before looking" in run.out
        return None if named else "the sentence does not say so"

    return expect_ok(run, check)


def _rename_file(content: str, mention: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = _results(tmp)
        names = tmp / "names.json"
        names.write_text(content)
        return expect_error(run_cli(["report", folder, "--rename-file", names]), mention)

    return run


def _output_case(kind: str, option: str = "--output") -> Callable[[Path, Context], Outcome]:
    """An output that cannot be written; the error must come before any work (no partial file)."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = _results(tmp)
        if kind == "is-a-folder":
            target = tmp / "out.md"
            target.mkdir()
        elif kind == "parent-is-a-file":
            (tmp / "afile").write_text("x")
            target = tmp / "afile" / "out.png"
        else:  # read-only folder (only meaningful when not root)
            ro = tmp / "ro"
            ro.mkdir()
            ro.chmod(0o500)
            target = ro / "out.png"
        if option == "--plot" and kind == "is-a-folder":
            target = tmp / "fig.png"
            target.mkdir()
        argv = ["report", folder, option, target]
        if option in ("--plot", "--notes-file"):
            argv += ["--output", tmp / "table.md"]
        outcome = expect_error(run_cli(argv), target.name)
        if outcome.kind == "clear_error" and (tmp / "table.md").exists():
            return Outcome("silently_wrong", f"the table was written before the {option} output was checked")
        return outcome

    return run


@contextlib.contextmanager
def _without_matplotlib() -> Iterator[None]:
    saved = {m: sys.modules[m] for m in list(sys.modules) if m == "matplotlib" or m.startswith("matplotlib.")}
    for m in saved:
        del sys.modules[m]
    sys.modules["matplotlib"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        del sys.modules["matplotlib"]
        sys.modules.update(saved)


def _plot_without_matplotlib(tmp: Path, ctx: Context) -> Outcome:
    folder = _results(tmp)
    with _without_matplotlib():
        run = run_cli(["report", folder, "--plot", tmp / "fig.png", "--output", tmp / "t.md"])
    outcome = expect_error(run, "pip install 'vtrbench[plot]'")
    if outcome.kind == "clear_error" and (tmp / "t.md").exists():
        return Outcome("silently_wrong", "the table was written before matplotlib was found missing")
    return outcome


def _piped(fmt: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = _results(tmp)
        out = run_cli(["report", folder, "--format", fmt])

        def check() -> str | None:
            if any("…" in ln for ln in out.out.splitlines() if ln.startswith("|")):
                return "cells cut to '…' in piped output"
            want = "| CAMoE " if fmt == "md" else "\\begin{tabular}"
            return None if want in out.out else f"no plain {fmt} table in the piped output"

        return expect_ok(out, check)

    return run


def _terminal(columns: int) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = _results(tmp)
        env = {"COLUMNS": str(columns), "FORCE_COLOR": "1", "NO_COLOR": "1", "TERM": "xterm"}
        out = run_cli_subprocess(
            ["report", folder, "--baseline", "meanp + infonce", "--n-boot", "50"], env=env, timeout=120
        )

        def check() -> str | None:
            text = re.sub(r"\x1b\[[0-9;]*m", "", out.out)  # styles (bold, italic) are not width
            if any("…" in ln for ln in text.splitlines() if "│" in ln or ln.startswith("|")):
                return f"cells cut to '…' at {columns} columns"
            wide = [ln for ln in text.splitlines() if len(ln) > columns]
            if wide:
                return f"{len(wide)} lines wider than {columns} columns"
            for name in ("CAMoE", "seqTransf", "Zero-shot", "t2v R@1"):
                if name not in text:
                    return f"{name!r} is missing at {columns} columns"
            return None

        return expect_ok(out, check)

    return run


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def _paper_output(
    argv: list[Any], check: Callable[[CliRun, Path], str | None]
) -> Callable[[Path, Context], Outcome]:
    """A paper-output option that must work (``check(run, tmp)`` says what is wrong), and write no
    file it was not asked for."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = _results(tmp)
        args = [a.replace("{tmp}", str(tmp)) if isinstance(a, str) else a for a in argv]
        before = _files(tmp)
        out = run_cli(["report", folder, *args])
        asked = {Path(a) for a in args if isinstance(a, str) and a.startswith(str(tmp))}

        def verdict() -> str | None:
            extra = _files(tmp) - before - asked
            if extra:
                return f"wrote files it was not asked for: {sorted(str(p) for p in extra)[:3]}"
            return check(out, tmp)

        return expect_ok(out, verdict)

    return run


def _short_notes_with_file(out: CliRun, tmp: Path) -> str | None:
    notes = (tmp / "notes.tex").read_text()
    if "Provenance" in out.out or "\\begin{table}" not in out.out:
        return "--notes short left the provenance under the table (or wrote no table)"
    if "Provenance: cache" not in notes or "Qbnorm: t2v is the official" not in notes:
        return "the notes file lacks the provenance or a protocol note"
    return None


def _no_notes_warns(out: CliRun, tmp: Path) -> str | None:
    if "Warning" in out.out or "- cells:" in out.out:
        return "--notes none printed notes or warnings under the tables"
    if "warning: some compared systems have only 2 seed(s)" not in out.err:
        return "--notes none dropped the warning instead of printing it on stderr"
    return None


def _defaults_spelled_out(tmp: Path, ctx: Context) -> Outcome:
    folder = _results(tmp)
    plain = run_cli(["report", folder, "--format", "latex"])
    spelled = run_cli(["report", folder, "--format", "latex", "--notes", "full", "--split", "auto"])
    return expect_ok(
        spelled,
        lambda: None if spelled.out == plain.out and plain.code == 0 else "the defaults spelled out differ",
    )


def _many_systems(tmp: Path, ctx: Context) -> Outcome:
    """300 configurations (900 rows in three blocks): LaTeX cut into page-sized floats, none too tall."""
    from vtrbench.report import pagefit

    folder = tmp / "many"
    folder.mkdir()
    data = json.loads((FIXTURE / VICTIM).read_text())
    for i in range(300):
        data.update(label=f"meanp-v{i:03d}", config_hash=f"hash-{i}", run_id=f"run-{i}")
        (folder / f"r{i}.json").write_text(json.dumps(data))
    out = run_cli(["report", folder, "--format", "latex", "--notes", "short"])

    def check() -> str | None:
        floats = out.out.count("\\begin{table}")
        least = 900 * 8.0 / pagefit.PAGE_PT  # rows of at least 8 pt on pages of 550 pt
        return None if floats >= least else f"{floats} floats for 900 rows: some run off the page"

    return expect_ok(out, check)


def cases() -> list[Case]:
    found = [Case("report", f"result-{name}", _damaged(write)) for name, write in DAMAGES.items()]
    found += [
        Case("report", "folder-named-json-inside-results", _folder_named_json),
        Case("report", "folder-named-json-given", _folder_named_json_given),
        Case("report", "inspect-folder-named-json", _inspect_folder_named_json),
        Case("report", "symlink-to-dev-zero", _symlink_to_dev_zero),
        Case("report", "duplicate-copy-counts-once", _duplicate_copy),
        Case("report", "duplicate-with-string-seed", _duplicate_with_string_seed),
        Case("report", "duplicate-with-other-metrics", _duplicate_with_other_metrics),
        Case("report", "option-unknown-column", _option_error("--columns", "t2v/R@2", mention="t2v/R@2")),
        Case("report", "option-empty-columns", _option_error("--columns", ",", mention="--columns")),
        Case("report", "option-bad-bootstrap", _option_error("--bootstrap", "seeds", mention="--bootstrap")),
        Case("report", "option-bad-labels", _option_error("--labels", "long", mention="--labels")),
        Case("report", "option-rename-no-equals", _option_error("--rename", "CAMoE", mention="--rename")),
        Case("report", "option-rename-unknown", _option_error("--rename", "Nope=x", mention="Nope")),
        Case("report", "option-unknown-baseline", _option_error("--baseline", "nothing", mention="nothing")),
        Case(
            "report",
            "option-baseline-mdr",
            _option_error("--baseline", "meanp + infonce", "--metric", "t2v/MdR", mention="t2v/MdR"),
        ),
        Case("report", "option-plot-jpg", _option_error("--plot", "fig.jpg", mention="fig.jpg")),
        Case("report", "option-latex-label-braces", _option_error("--label", "tab:a}b", mention="--label")),
        Case("report", "option-n-boot-zero", _option_error("--n-boot", "0", mention="--n-boot")),
        Case("report", "option-unknown-post", _option_error("--post", "dls", mention="dls")),
        # the decomposition's target cell (issue 27): malformed, unknown post, raw, a cell no head has
        Case(
            "report",
            "option-target-no-colon",
            _option_error("--decomposition-target", "dsl", mention="LOSS:POST"),
        ),
        Case(
            "report",
            "option-target-unknown-post",
            _option_error("--decomposition-target", "dsl:dls", mention="dls"),
        ),
        Case(
            "report",
            "option-target-raw",
            _option_error("--decomposition-target", "dsl:raw", mention="must change the inference"),
        ),
        Case(
            "report",
            "option-target-empty-loss",
            _option_error("--decomposition-target", ":dsl", mention="LOSS:POST"),
        ),
        Case(
            "report",
            "option-target-no-such-cell",
            _option_error("--decomposition-target", "triplet:dsl", mention="no head has that cell"),
        ),
        Case("report", "option-target-named-cell", _target_named),
        Case("report", "rename-file-bad-json", _rename_file("{not json", "names.json")),
        Case(
            "report",
            "rename-file-nested",
            _rename_file("{" + '"a":' * 50_000 + "1" + "}" * 50_000, "names.json"),
        ),
        Case("report", "rename-file-not-names", _rename_file('{"a": [1]}', "names.json")),
        Case(
            "report",
            "rename-file-missing",
            _option_error("--rename-file", "no-such-names.json", mention="no-such-names.json"),
        ),
        Case("report", "output-is-a-folder", _output_case("is-a-folder")),
        Case("report", "output-parent-is-a-file", _output_case("parent-is-a-file")),
        Case("report", "plot-is-a-folder", _output_case("is-a-folder", "--plot")),
        Case("report", "plot-parent-is-a-file", _output_case("parent-is-a-file", "--plot")),
        Case("report", "plot-without-matplotlib", _plot_without_matplotlib),
        Case("report", "option-bad-notes", _option_error("--notes", "long", mention="--notes")),
        Case("report", "option-bad-split", _option_error("--split", "pages", mention="--split")),
        Case(
            "report",
            "notes-with-json",
            _option_error("--format", "json", "--notes", "short", mention="--notes short"),
        ),
        Case(
            "report",
            "notes-file-with-csv",
            _option_error("--format", "csv", "--notes-file", "{tmp}/n.md", mention="--notes-file"),
        ),
        Case("report", "split-with-markdown", _option_error("--split", "blocks", mention="--split blocks")),
        Case(
            "report",
            "notes-file-same-as-output",
            _option_error("--output", "{tmp}/t.md", "--notes-file", "{tmp}/t.md", mention="--notes-file"),
        ),
        Case("report", "notes-file-is-a-folder", _output_case("is-a-folder", "--notes-file")),
        Case("report", "notes-file-parent-is-a-file", _output_case("parent-is-a-file", "--notes-file")),
        Case(
            "report",
            "notes-short-with-notes-file",
            _paper_output(
                ["--format", "latex", "--notes", "short", "--notes-file", "{tmp}/notes.tex"],
                _short_notes_with_file,
            ),
        ),
        Case(
            "report",
            "notes-none-prints-warnings",
            _paper_output(
                ["--notes", "none", "--baseline", "meanp + infonce", "--n-boot", "50"], _no_notes_warns
            ),
        ),
        Case("report", "paper-defaults-spelled-out", _defaults_spelled_out),
        Case("report", "latex-300-systems-split", _many_systems, quick=False),
        Case("report", "piped-markdown", _piped("md")),
        Case("report", "piped-latex", _piped("latex")),
        Case("report", "terminal-80-columns", _terminal(80)),
        Case("report", "terminal-60-columns", _terminal(60), quick=False),
        Case("report", "terminal-120-columns", _terminal(120), quick=False),
    ]
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # root writes anywhere: no read-only folder to test
        found += [
            Case("report", "output-read-only-folder", _output_case("read-only")),
            Case("report", "plot-read-only-folder", _output_case("read-only", "--plot")),
            Case("report", "notes-file-read-only-folder", _output_case("read-only", "--notes-file")),
        ]
    return found
