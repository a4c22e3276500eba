"""Faults of issue 28 in ``search``, ``browse``, ``report`` and the other commands' ``--output``:

- query text: a UTF-8 byte-order mark, CRLF and bare CR line ends in a ``--queries`` file or a query
  (the mark stayed in the first query, and hid a first-line comment), normalised in one place;
  control characters in a value or path never reach the terminal raw (an error line echoed ESC);
- ``--output``: empty (``browse`` wrote ./index.html), under /proc (a FileNotFoundError traceback),
  ``index.html`` a folder (IsADirectoryError at the rename), a file as the folder: one line each,
  the same check (vtrbench.io.check_output_path) for report, browse, demo and extract;
- a label holding ``<!--`` and a later ``<script`` blanked the browse page: the page must still
  hold the table and its data must hold no markup;
- result files whose ``topk`` contradicts ``per_query`` (report and browse read them without a word).

Cases use the shared tiny cache and results (benchmarks.faults.core); copies are damaged, never them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.faults.core import Case, Context, Outcome, expect_error, expect_ok, tiny_cache, tiny_results
from benchmarks.faults.search_cases import run_cli

AREA = "web"


@contextlib.contextmanager
def _cwd(folder: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


# ------------------------------------------------------------------ query text


def _queries_json(content: bytes, want: list[str]) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        f = tmp / "queries.txt"
        f.write_bytes(content)
        r = run_cli(["search", "--cache", tiny_cache(ctx), "--queries", f, "--json", "-k", 1])

        def check() -> str | None:
            got = [row["query"] for row in json.loads(r.out)]
            return None if got == want else f"queries read as {got!r}, expected {want!r}"

        return expect_ok(r, check)

    return run


def _api_bom(tmp: Path, ctx: Context) -> Outcome:
    from benchmarks.faults.core import CliRun
    from vtrbench import api

    hits = api.search(tiny_cache(ctx), "\ufeffa red circle\r\n", k=1)
    got = hits[0]["query"]
    run = CliRun(0, "", "", "")
    return expect_ok(run, lambda: None if got == "a red circle" else f"api.search kept {got!r}")


def _no_raw_controls(*argv: Any, error: bool) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        r = run_cli([a.replace("TMP", str(tmp)) if isinstance(a, str) else a for a in
                     ["search", "--cache", tiny_cache(ctx), *argv]])  # fmt: skip

        def check() -> str | None:
            raw = [c for c in ("\x1b", "\x07") if c in r.out or c in r.err]
            return f"{raw!r} reached the terminal raw" if raw else None

        if error:
            out = expect_error(r)
            problem = check() if out.kind == "clear_error" else None
            return Outcome("silently_wrong", problem) if problem else out
        return expect_ok(r, check)

    return run


# ------------------------------------------------------------------ --output


def _browse_output(target: Callable[[Path], Any], *mention: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        work = tmp / "cwd"
        work.mkdir()
        with _cwd(work):  # an empty --output must not write into the current folder
            r = run_cli(["browse", tiny_results(ctx), "--cache", tiny_cache(ctx), "--output", target(tmp)])
        out = expect_error(r, "--output", *mention)
        if out.kind == "clear_error" and any(work.iterdir()):
            return Outcome("silently_wrong", f"wrote into the current folder: {sorted(work.iterdir())}")
        return out

    return run


def _index_is_a_folder(tmp: Path) -> Path:
    (tmp / "site2" / "index.html").mkdir(parents=True)
    return tmp / "site2"


def _folder_is_a_file(tmp: Path) -> Path:
    (tmp / "f").write_text("x")
    return tmp / "f" / "site"


def _command_output(command: str, target: Callable[[Path], Any]) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        out_path = target(tmp)
        if command == "report":
            argv: list[Any] = ["report", tiny_results(ctx), "--output", out_path]
        elif command == "demo":
            argv = ["demo", "--output", out_path, "--videos", 16, "--epochs", 1, "--quiet"]
        else:
            from benchmarks.faults.core import extract_argv, synthetic_dataset

            argv = extract_argv(synthetic_dataset(ctx), out_path)
        work = tmp / "cwd"
        work.mkdir()
        with _cwd(work):
            r = run_cli(argv)
        out = expect_error(r, "--output")
        if out.kind == "clear_error" and any(work.iterdir()):
            return Outcome("silently_wrong", f"wrote into the current folder: {sorted(work.iterdir())}")
        return out

    return run


# ------------------------------------------------------------------ the page's script


def _labelled(tmp: Path, ctx: Context, label: str) -> Path:
    results = tmp / "results"
    shutil.copytree(tiny_results(ctx), results)
    for p in results.rglob("*.json"):
        r = json.loads(p.read_text())
        r["label"] = label
        p.write_text(json.dumps(r))
    return results


def _comment_then_script(tmp: Path, ctx: Context) -> Outcome:
    """``<!--`` then ``<script`` in the data put the parser in the script-data double-escaped state:
    the data block swallowed the page's script and the page showed nothing, without an error."""
    results = _labelled(tmp, ctx, "meanp <!-- a <script> b")
    r = run_cli(["browse", results, "--cache", tiny_cache(ctx), "--output", tmp / "site"])

    def check() -> str | None:
        page = tmp / "site" / "index.html"
        text = page.read_text()
        start = text.index('<script id="data" type="application/json">')
        block = text[start + 42 : text.index("</script>", start)]
        if "<" in block:
            return "the page's data holds '<': a caption or label can change how the page parses"
        from vtrbench.browse.chromium import dump_dom, find_chromium

        if find_chromium() is None:
            return None
        dom = dump_dom(page)
        if "<tbody><tr>" not in dom.replace("\n", ""):
            return "Chromium shows no table rows"
        return None

    return expect_ok(r, check)


# ------------------------------------------------------------------ topk against per_query


def _structured_result(template: Path, out: Path) -> None:
    """``template`` (a tiny result file) with the evaluation of 36 captions near their 12 videos in
    place of its metrics, counts and lists: enough queries ranked first without a tie to check with."""
    import torch

    from vtrbench.eval import evaluate_embeddings

    g = torch.Generator().manual_seed(0)
    video = torch.nn.functional.normalize(torch.randn(12, 8, generator=g), dim=1)
    qv = torch.arange(36) % 12
    text = torch.nn.functional.normalize(video[qv] + 0.3 * torch.randn(36, 8, generator=g), dim=1)
    ev = evaluate_embeddings(text, video, qv, logit_scale=100.0, postprocessing=["raw", "dsl", "is-test"])
    r = json.loads(template.read_text())
    r["protocol"].update(n_queries=36, n_gallery=12)
    for key in ("metrics", "per_query", "per_query_ranks", "topk", "topk_scores"):
        r[key] = ev[key]
    r["transductive"] = {"raw": False, "dsl": True, "is-test": True}
    out.write_text(json.dumps(r))


def _contradicting_topk(command: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        from vtrbench.errors import VtrbenchError
        from vtrbench.results import read_result

        results = tmp / "results"
        results.mkdir()
        victim = results / "structured.json"
        _structured_result(sorted(tiny_results(ctx).rglob("*.json"))[0], victim)
        try:
            read_result(victim)
        except VtrbenchError as e:
            return Outcome("silently_wrong", f"the evaluation's own file is refused: {e}"[:200])
        r = json.loads(victim.read_text())
        both = [
            q
            for q, (h, t, h2, t2) in enumerate(zip(*(r["per_query"][p]["t2v"][k] for p in ("raw", "dsl")
                                                     for k in ("higher", "tied")), strict=True))
            if h == t == h2 == t2 == 0
        ]  # fmt: skip
        if not both:
            return Outcome("silently_wrong", "no query ranked first without a tie under raw and dsl")
        row = r["topk"]["raw"]["t2v"][both[0]]
        row[0], row[1] = row[1], row[0]  # raw's list now contradicts raw's and dsl's counts
        victim.write_text(json.dumps(r))
        argv: list[Any] = ["report", results, "--post", "raw"] if command == "report" else [
            "browse", results, "--cache", tiny_cache(ctx), "--output", tmp / "site"]  # fmt: skip
        return expect_error(run_cli(argv), victim.name, "topk.")

    return run


def cases() -> list[Case]:
    bom = "\ufeff".encode()
    return [
        Case(AREA, "queries-file-bom", _queries_json(bom + b"a red circle\n", ["a red circle"])),
        Case(
            AREA,
            "queries-file-bom-before-comment",
            _queries_json(bom + b"# my queries\na red circle\n", ["a red circle"]),
            quick=False,
        ),
        Case(
            AREA,
            "queries-file-crlf-and-cr",
            _queries_json(
                b"a red circle\r\nblue square\rgreen\r\n", ["a red circle", "blue square", "green"]
            ),
            quick=False,
        ),
        Case(AREA, "query-bom-api", _api_bom, quick=False),
        Case(AREA, "query-escape-not-echoed", _no_raw_controls("a \x1b[2Jred\x07 circle", error=False)),
        Case(
            AREA,
            "path-escape-not-echoed-in-error",
            _no_raw_controls("--queries", "TMP/\x1b[31mq\x07.txt", error=True),
            quick=False,
        ),
        Case(AREA, "browse-output-empty", _browse_output(lambda tmp: "", "empty")),
        Case(AREA, "browse-output-proc", _browse_output(lambda tmp: "/proc/vtrsite"), quick=False),
        Case(
            AREA,
            "browse-output-index-is-a-folder",
            _browse_output(_index_is_a_folder, "index.html"),
            quick=False,
        ),
        Case(
            AREA, "browse-output-under-a-file", _browse_output(_folder_is_a_file, "not a folder"), quick=False
        ),
        Case(AREA, "report-output-empty", _command_output("report", lambda tmp: ""), quick=False),
        Case(AREA, "report-output-proc", _command_output("report", lambda tmp: "/proc/vtr.md"), quick=False),
        Case(AREA, "demo-output-proc", _command_output("demo", lambda tmp: "/proc/vtrdemo"), quick=False),
        Case(AREA, "demo-output-under-a-file", _command_output("demo", _folder_is_a_file), quick=False),
        Case(AREA, "extract-output-empty", _command_output("extract", lambda tmp: ""), quick=False),
        Case(AREA, "extract-output-proc", _command_output("extract", lambda tmp: "/proc/x.h5"), quick=False),
        Case(AREA, "browse-label-comment-then-script", _comment_then_script, quick=False),
        Case(AREA, "topk-contradicts-per-query-report", _contradicting_topk("report")),
        Case(AREA, "topk-contradicts-per-query-browse", _contradicting_topk("browse"), quick=False),
    ]
