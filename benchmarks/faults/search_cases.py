"""Faults in ``vtrbench search`` and ``vtrbench browse``: hostile queries and query files, caches and
checkpoints that do not belong together, CLIP weights that moved or differ, results that mix caches,
labels that try to break out of the page's script.

Cases use the shared tiny cache and results (benchmarks.faults.core); copies are damaged, never them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from benchmarks.faults.core import (
    Case,
    CliRun,
    Context,
    Outcome,
    environment,
    expect_error,
    expect_ok,
    tiny_cache,
    tiny_results,
    train_argv,
)
from benchmarks.faults.core import run_cli as core_run_cli

_TOWERS: list[str] = []


def run_cli(argv: Any) -> CliRun:
    """core.run_cli with search's kept text towers in a folder of the suite's, never the user's
    ~/.cache (a case that sets VTRBENCH_CACHE_DIR itself keeps its own)."""
    if "VTRBENCH_CACHE_DIR" in os.environ:
        return core_run_cli(argv)
    if not _TOWERS:
        _TOWERS.append(tempfile.mkdtemp(prefix="vtrbench-fault-towers-"))
    with environment(VTRBENCH_CACHE_DIR=_TOWERS[0]):
        return core_run_cli(argv)


def _search(*argv: Any, mention: tuple[str, ...] = ()) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        return expect_error(run_cli(["search", "--cache", tiny_cache(ctx), *argv]), *mention)

    return run


def _search_ok(*argv: Any, check: Callable[[str], str | None]) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        r = run_cli(["search", "--cache", tiny_cache(ctx), "--json", *argv])
        return expect_ok(r, lambda: check(r.out))

    return run


def _hits_ok(out: str) -> str | None:
    try:
        rows = json.loads(out)
    except json.JSONDecodeError:
        return f"--json printed no JSON: {out[:100]}"
    if not rows or [r["rank"] for r in rows] != list(range(1, len(rows) + 1)):
        return f"ranks are not 1..k: {rows[:3]}"
    scores = [r["score"] for r in rows]
    return None if scores == sorted(scores, reverse=True) else f"scores not descending: {scores}"


def _queries_file(content: bytes, *mention: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        f = tmp / "queries.txt"
        f.write_bytes(content)
        return expect_error(run_cli(["search", "--cache", tiny_cache(ctx), "--queries", f]), *mention)

    return run


def _checkpoint(ctx: Context) -> Path:
    def make(folder: Path) -> Path:
        ckpt = folder / "meanp.pt"
        r = run_cli(train_argv(tiny_cache(ctx), folder / "results", "--save-checkpoint", ckpt))
        if r.code != 0:
            raise RuntimeError(f"fixture: train --save-checkpoint failed: {r.text[-300:]}")
        return ckpt

    return ctx.once("search-checkpoint", make)


def _other_cache_checkpoint(tmp: Path, ctx: Context) -> Outcome:
    import torch

    ckpt = torch.load(_checkpoint(ctx), map_location="cpu", weights_only=True)
    ckpt["config"]["cache_hash"] = "0123456789abcdef"
    path = tmp / "other.pt"
    torch.save(ckpt, path)
    r = run_cli(["search", "--cache", tiny_cache(ctx), "--checkpoint", path, "a query"])
    return expect_error(r, "trained on another cache")


def _garbage_checkpoint(tmp: Path, ctx: Context) -> Outcome:
    path = tmp / "garbage.pt"
    path.write_bytes(b"\x00not a checkpoint" * 10)
    return expect_error(
        run_cli(["search", "--cache", tiny_cache(ctx), "--checkpoint", path, "q"]), "garbage.pt"
    )


def _moved_weights(tmp: Path, ctx: Context) -> Outcome:
    copy = tmp / "cache.h5"
    shutil.copy(tiny_cache(ctx), copy)
    with h5py.File(copy, "r+") as f:
        f.attrs["pretrained"] = "/gone/ViT-B-32.pt"
        f.attrs["random_weights"] = False
    return expect_error(
        run_cli(["search", "--cache", copy, "a query"]), "/gone/ViT-B-32.pt", "--clip-weights"
    )


def _wrong_weights(tmp: Path, ctx: Context) -> Outcome:
    import open_clip
    import torch

    from vtrbench.extract.encode import _register_configs

    _register_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        model = open_clip.create_model("vtrbench-tiny", pretrained=None)
    path = tmp / "other-clip.pt"
    torch.save(model.state_dict(), path)
    r = run_cli(["search", "--cache", tiny_cache(ctx), "--clip-weights", path, "a query"])
    return expect_error(r, "do not reproduce the caption features")


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _read_only(tmp: Path, ctx: Context) -> Outcome:
    """search reads its cache and writes nothing beside it; with VTRBENCH_CACHE_DIR=off nothing at all."""
    folder = tmp / "cache"
    folder.mkdir()
    shutil.copy(tiny_cache(ctx), folder / "c.h5")
    before = _listing(folder)
    home = tmp / "home"
    with environment(VTRBENCH_CACHE_DIR="off", HOME=str(home), XDG_CACHE_HOME=str(home / ".cache")):
        r = run_cli(["search", "--cache", folder / "c.h5", "a red circle", "--json"])
    if _listing(folder) != before:
        return Outcome("lost", "search changed or added files beside its cache")
    return expect_ok(
        r, lambda: f"files written under HOME: {list(home.rglob('*'))[:3]}" if home.exists() else None
    )


def _tower_dir(make: Callable[[Path], Path], *note: str) -> Callable[[Path, Context], Outcome]:
    """The kept-text-tower folder is damaged or unusable: search still answers, right, and says why."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        with environment(VTRBENCH_CACHE_DIR="off"):
            plain = run_cli(["search", "--cache", tiny_cache(ctx), "a red circle", "--json"])
        with environment(VTRBENCH_CACHE_DIR=str(make(tmp))):
            r = run_cli(["search", "--cache", tiny_cache(ctx), "a red circle", "--json"])

        def check() -> str | None:
            if json.loads(r.out) != json.loads(plain.out):
                return "the hits differ from the open_clip path's"
            missing = [n for n in note if n not in r.err]
            return f"no note saying {missing}" if missing else None

        return expect_ok(r, check)

    return run


def _damaged_tower(tmp: Path) -> Path:
    from vtrbench.extract.text_tower import tower_path

    with environment(VTRBENCH_CACHE_DIR=str(tmp / "towers")):
        path = tower_path("vtrbench-tiny", "none")
    assert path is not None
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not a torch file" * 50)
    return tmp / "towers"


def _tower_dir_is_a_file(tmp: Path) -> Path:
    (tmp / "towers").write_text("a file where the folder should be")
    return tmp / "towers"


def _hostile_captions(tmp: Path, ctx: Context) -> Outcome:
    """Cached captions with terminal escapes and rich markup are printed as text, never obeyed."""
    copy = tmp / "c.h5"
    shutil.copy(tiny_cache(ctx), copy)
    hostile = "\x1b[31mred\x1b[0m [bold]markup[/bold] \x07bell"
    with h5py.File(copy, "r+") as f:
        captions = f["texts"]["caption"].asstr()[:]
        captions[1:] = hostile  # caption 0 is search's check of the text tower: kept as extracted
        del f["texts"]["caption"]
        f["texts"].create_dataset(
            "caption", data=np.array(list(captions), dtype=object), dtype=h5py.string_dtype()
        )
    r = run_cli(["search", "--cache", copy, "a red circle", "-k", "100"])

    def check() -> str | None:
        if "\x1b" in r.out or "\x07" in r.out:
            return "a control character reached the terminal"
        return None if "[bold]markup[/bold]" in r.out else "rich markup in a caption was interpreted"

    return expect_ok(r, check)


def _captions_shown(n: Any, expect: Callable[[str], str | None]) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        r = run_cli(["search", "--cache", tiny_cache(ctx), "a red circle", "-k", "2", "--captions", n])
        return expect_ok(r, lambda: expect(r.out))

    return run


def _defaults_spelled_out(tmp: Path, ctx: Context) -> Outcome:
    from vtrbench import defaults

    bare = run_cli(["search", "--cache", tiny_cache(ctx), "a red circle"])
    spelled = run_cli(["search", "--cache", tiny_cache(ctx), "a red circle", "-k", 10, "--captions",
                       defaults.SEARCH_CAPTIONS, "--device", "cpu"])  # fmt: skip
    return expect_ok(
        spelled, lambda: None if spelled.out == bare.out else "explicit defaults change the output"
    )


def _random_weights_said(tmp: Path, ctx: Context) -> Outcome:
    r = run_cli(["search", "--cache", tiny_cache(ctx), "a red circle", "--json"])
    return expect_ok(r, lambda: None if "RANDOM CLIP weights" in r.err else "no random-weights warning")


# ------------------------------------------------------------------ browse


def _browse(mutate: Callable[[Path, Path], list[Any]], *mention: str) -> Callable[[Path, Context], Outcome]:
    """``mutate(tmp, results_copy)`` returns extra argv; the browse run must fail naming ``mention``."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        results = tmp / "results"
        shutil.copytree(tiny_results(ctx), results)
        extra = mutate(tmp, results)
        argv = ["browse", results, "--cache", tiny_cache(ctx), "--output", tmp / "site", *extra]
        return expect_error(run_cli(argv), *mention)

    return run


def _mix_caches(tmp: Path, results: Path) -> list[Any]:
    victim = sorted(results.rglob("*.json"))[0]
    r = json.loads(victim.read_text())
    r["cache"]["fingerprint"] = r["cache"]["config_hash"] = "0" * 16
    victim.write_text(json.dumps(r))
    return []


def _output_file(tmp: Path, results: Path) -> list[Any]:
    (tmp / "page").write_text("a file")
    return ["--output", tmp / "page"]


def _script_breakout(tmp: Path, ctx: Context) -> Outcome:
    """A label holding ``</script>`` and an external image must stay text: the page's JSON escapes it
    and the page sets text, never HTML (and its CSP would block the image anyway)."""
    results = tmp / "results"
    shutil.copytree(tiny_results(ctx), results)
    hostile = '</script><img src="http://example.invalid/x.png"><script>alert(1)</script>'
    for p in results.rglob("*.json"):
        r = json.loads(p.read_text())
        r["label"] = hostile
        p.write_text(json.dumps(r))
    run = run_cli(["browse", results, "--cache", tiny_cache(ctx), "--output", tmp / "site"])

    def check() -> str | None:
        from vtrbench.browse import page_data

        page = tmp / "site" / "index.html"
        text = page.read_text()
        if text.count("</script>") != 2:
            return f"the page holds {text.count('</script>')} script end tags (2 expected)"
        ids = [s["id"] for s in page_data(page)["systems"]]
        return None if any(hostile in i for i in ids) else f"the label did not survive as data: {ids}"

    return expect_ok(run, check)


def cases() -> list[Case]:
    return [
        Case("search", "empty-query", _search("   ", mention=("empty",))),
        Case("search", "no-query", _search(mention=("no query",)), quick=False),
        Case("search", "query-10k-characters", _search("a " * 5000, mention=("characters",))),
        Case("search", "unknown-split", _search("q", "--split", "tset", mention=("tset",))),
        Case(
            "search", "query-and-file", _search("q", "--queries", "x.txt", mention=("not both",)), quick=False
        ),
        Case("search", "k-zero", _search("q", "-k", "0", mention=("-k",)), quick=False),
        Case(
            "search",
            "queries-file-missing",
            _search("--queries", "nope.txt", mention=("nope.txt",)),
            quick=False,
        ),
        Case(
            "search", "queries-file-empty", _queries_file(b"\n# only a comment\n\n", "no query"), quick=False
        ),
        Case(
            "search", "queries-file-not-utf8", _queries_file(b"\xff\xfe\x00bad", "queries.txt"), quick=False
        ),
        Case(
            "search",
            "queries-file-one-too-long",
            _queries_file(b"ok\n" + b"x" * 2000, "query 2"),
            quick=False,
        ),
        Case(
            "search",
            "cache-missing",
            lambda tmp, ctx: expect_error(run_cli(["search", "--cache", tmp / "none.h5", "q"]), "none.h5"),
            quick=False,
        ),  # fmt: skip
        Case(
            "search",
            "cache-not-hdf5",
            lambda tmp, ctx: (
                (tmp / "x.h5").write_text("no")
                and expect_error(run_cli(["search", "--cache", tmp / "x.h5", "q"]), "x.h5")
            ),
            quick=False,
        ),  # fmt: skip
        Case("search", "checkpoint-garbage", _garbage_checkpoint, quick=False),
        Case("search", "checkpoint-of-another-cache", _other_cache_checkpoint, quick=False),
        Case("search", "clip-weights-moved", _moved_weights, quick=False),
        Case("search", "clip-weights-differ", _wrong_weights, quick=False),
        Case(
            "search",
            "unicode-and-punctuation-query",
            _search_ok("¿Qué? 🐕 — «a dog» !!!", check=_hits_ok),
            quick=False,
        ),  # fmt: skip
        Case(
            "search",
            "control-characters-query",
            _search_ok("a\tred\x00circle\x1b[31m", check=_hits_ok),
            quick=False,
        ),  # fmt: skip
        Case("search", "read-only-writes-nothing", _read_only),
        Case("search", "random-weights-warned", _random_weights_said, quick=False),
        Case(
            "search",
            "kept-tower-damaged",
            _tower_dir(_damaged_tower, "kept the text tower"),
            quick=False,
        ),  # fmt: skip
        Case(
            "search",
            "kept-tower-folder-is-a-file",
            _tower_dir(_tower_dir_is_a_file, "not kept", "cannot write"),
            quick=False,
        ),  # fmt: skip
        Case("search", "captions-with-escapes-and-markup", _hostile_captions, quick=False),
        Case(
            "search",
            "captions-negative",
            _search("q", "--captions", "-1", mention=("--captions",)),
            quick=False,
        ),
        Case(
            "search",
            "captions-huge",
            _captions_shown(
                10**9, lambda out: None if out.count("“") == 6 else "not every caption (3 each) shown"
            ),
            quick=False,
        ),  # fmt: skip
        Case(
            "search",
            "captions-zero",
            _captions_shown(0, lambda out: None if "“" not in out else "captions shown with --captions 0"),
            quick=False,
        ),  # fmt: skip
        Case("search", "k-huge", _search_ok("a red circle", "-k", 10**9, check=_hits_ok), quick=False),
        Case("search", "defaults-spelled-out", _defaults_spelled_out, quick=False),
        Case("browse", "results-mixing-caches", _browse(_mix_caches, "cache")),
        Case("browse", "output-is-a-file", _browse(_output_file, "not a folder"), quick=False),
        Case(
            "browse", "unknown-system", _browse(lambda t, r: ["--a", "camo + dsl"], "camo + dsl"), quick=False
        ),
        Case(
            "browse",
            "results-folder-empty",
            _browse(lambda t, r: [shutil.rmtree(r), r.mkdir()] and [], "no result"),
            quick=False,
        ),  # fmt: skip
        Case("browse", "label-breaks-out-of-script", _script_breakout, quick=False),
    ]
