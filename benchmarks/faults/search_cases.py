"""Faults in ``vtrbench search`` and ``vtrbench browse``: hostile queries and query files, caches and
checkpoints that do not belong together, CLIP weights that moved or differ, results that mix caches,
labels that try to break out of the page's script.

Cases use the shared tiny cache and results (benchmarks.faults.core); copies are damaged, never them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py

from benchmarks.faults.core import (
    Case,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    run_cli,
    tiny_cache,
    tiny_results,
    train_argv,
)


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
