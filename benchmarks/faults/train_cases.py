"""Faults of ``train``, ``eval`` and ``ablate``: bad options of every numeric and choice option, bad
grid files, damaged or foreign results in the results folder, unwritable outputs, bad checkpoints
and a custom dataset whose train and test splits share a video.

Each case injects one fault into a copy (the shared fixtures stay untouched) and classifies the
run with :func:`benchmarks.faults.core.expect_error` / :func:`expect_ok`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.faults.core import (
    Case,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    run_cli,
    synthetic_dataset,
    tiny_cache,
    train_argv,
)

AREA = "train"
EVAL = ("--device", "cpu")
ABLATE = ("--heads", "meanp", "--losses", "infonce", "--seeds", "0", "--epochs", "1", "--batch-size", "8")
ABLATE += ("--device", "cpu", "--quiet")


# ------------------------------------------------------------------ helpers


def _train(ctx: Context, results: Path, *extra: Any) -> Any:
    return run_cli(train_argv(tiny_cache(ctx), results, *extra))


def _eval(ctx: Context, results: Path, *extra: Any) -> Any:
    return run_cli(["eval", "--cache", tiny_cache(ctx), *EVAL, "--results", results, *extra])


def _ablate(ctx: Context, results: Path, *extra: Any) -> Any:
    return run_cli(["ablate", "--cache", tiny_cache(ctx), *ABLATE, "--results", results, *extra])


def _results(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.json") if not p.name.startswith("."))


def _valid_results(folder: Path) -> str | None:
    """None when every result file under ``folder`` reads back as the run its name says."""
    from vtrbench.errors import VtrbenchError
    from vtrbench.results import read_result

    files = _results(folder)
    if not files:
        return "no result file was written"
    for f in files:
        try:
            data = read_result(f)
        except VtrbenchError as e:
            return f"an invalid result is left: {e}"
        if data["run_id"] != f.name[: -len(".json")]:
            return f"{f.name} holds run {data['run_id']}"
    return None


@contextlib.contextmanager
def _readonly(folder: Path) -> Iterator[str]:
    """A folder that cannot be written: a read-only tmpfs for root (permission bits do not stop
    root), mode 0555 otherwise. Yields how it was made ("" when it could not be: then the run may
    legitimately succeed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield "mode 0555"
        finally:
            folder.chmod(0o755)
        return
    cmd = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)]
    mounted = subprocess.run(cmd, capture_output=True).returncode == 0
    try:
        yield "read-only tmpfs" if mounted else ""
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], capture_output=True)


# ------------------------------------------------------------------ bad options

# (command, option, value, what the error must name)
BAD_OPTIONS: list[tuple[str, str, str]] = [
    ("train", "--epochs", "0"),
    ("train", "--epochs", "2.5"),
    ("train", "--batch-size", "1"),
    ("train", "--lr", "nan"),
    ("train", "--lr", "inf"),
    ("train", "--lr", "-1"),
    ("train", "--weight-decay", "nan"),
    ("train", "--weight-decay", "-0.1"),
    ("train", "--val-fraction", "1"),
    ("train", "--val-fraction", "0.999"),
    ("train", "--val-fraction", "nan"),
    ("train", "--dsl-tau", "0"),
    ("train", "--dsl-tau", "inf"),
    ("train", "--qb-bank", "0"),
    ("train", "--qb-beta", "nan"),
    ("train", "--qb-k", "0"),
    ("train", "--mdr", "median"),
    ("train", "--precision", "fp16"),
    ("train", "--precision", "bf16"),  # CUDA only; the fixtures run on the CPU
    ("train", "--v2t-protocol", "max"),
    ("train", "--temperature", "nan"),
    ("train", "--seed", "123456789012345678901"),
    ("train", "--seed", "-1"),
    ("train", "--seed", "x"),
    ("train", "--aux-weight", "nan"),
    ("train", "--device", "tpu"),
    ("train", "--overwrite", "sometimes"),
    ("train", "--train-split", "nosuchsplit"),
    ("eval", "--dsl-tau", "nan"),
    ("eval", "--qb-beta", "inf"),
    ("eval", "--qb-bank", "0"),
    ("eval", "--qb-k", "0"),
    ("eval", "--mdr", "lower"),
    ("eval", "--v2t-protocol", "max"),
    ("eval", "--test-split", "nosuchsplit"),
    ("ablate", "--epochs", "0"),
    ("ablate", "--lr", "nan"),
    ("ablate", "--qb-k", "-2"),
    ("ablate", "--seeds", "99999999999999999999999"),
    ("ablate", "--heads", "meanpp"),
    ("ablate", "--losses", "crossent"),
    ("ablate", "--aux-weight", "nan"),
]


def _bad_option(command: str, option: str, value: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        results = tmp / "results"
        extra: list[Any] = [option, value]
        if option == "--aux-weight" and command == "train":
            extra = ["--head", "camoe", *extra]  # the option belongs to camoe; the value is the fault
        if option == "--temperature":
            extra = ["--loss", "dsl", *extra]
        if command == "train":
            r = _train(ctx, results, *extra)
        elif command == "eval":
            r = _eval(ctx, results, "--head", "zeroshot", *extra)
        else:
            if option == "--aux-weight":
                extra = ["--heads", "camoe", *extra]
            r = _ablate(ctx, results, *extra)
        mention = value if option in ("--train-split", "--test-split", "--heads", "--losses") else option
        out = expect_error(r, mention)
        if out.kind == "clear_error" and _results(results):
            return Outcome("silently_wrong", "an error, but a result file was written")
        return out

    return run


# ------------------------------------------------------------------ grid files

GRIDS: dict[str, bytes] = {
    "heads-string": b'heads = "meanp"\n',
    "heads-nested-list": b'heads = [["meanp"]]\n',
    "heads-number": b"heads = [1]\n",
    "heads-empty": b"heads = []\n",
    "losses-unknown": b'heads = ["meanp"]\nlosses = ["crossent"]\n',
    "seeds-string": b'heads = ["meanp"]\nseeds = ["0"]\n',
    "seeds-huge": b'heads = ["meanp"]\nseeds = [99999999999999999999]\n',
    "seeds-negative": b'heads = ["meanp"]\nseeds = [-1]\n',
    "epochs-zero": b'heads = ["meanp"]\nlosses = ["infonce"]\n[train]\nepochs = 0\n',
    "batch-size-one": b'heads = ["meanp"]\nlosses = ["infonce"]\n[train]\nbatch_size = 1\n',
    "epochs-string": b'heads = ["meanp"]\n[train]\nepochs = "5"\n',
    "epochs-float": b'heads = ["meanp"]\n[train]\nepochs = 2.5\n',
    "epochs-bool": b'heads = ["meanp"]\n[train]\nepochs = true\n',
    "lr-nan": b'heads = ["meanp"]\n[train]\nlr = nan\n',
    "lr-inf": b'heads = ["meanp"]\n[train]\nlr = inf\n',
    "val-fraction-one": b'heads = ["meanp"]\n[train]\nval_fraction = 1.0\n',
    "qb-k-zero": b'heads = ["meanp"]\n[train]\nqb_k = 0\n',
    "mdr-unknown": b'heads = ["meanp"]\n[train]\nmdr = "lower"\n',
    "precision-bf16-on-cpu": b'heads = ["meanp"]\n[train]\nprecision = "bf16"\n',
    "allow-overlap-string": b'heads = ["meanp"]\n[train]\nallow_overlap = "yes"\n',
    "protocol-unknown": b'heads = ["meanp"]\n[train]\nv2t_protocol = "max"\n',
    "train-not-table": b'heads = ["meanp"]\ntrain = 3\n',
    "train-nested-table": b'heads = ["meanp"]\n[train.inner]\nepochs = 1\n',
    "unknown-top-key": b'heads = ["meanp"]\nepochs = 1\n',
    "unknown-train-key": b'heads = ["meanp"]\n[train]\nepoch = 1\n',
    "camoe-experts-flat": b'heads = ["camoe"]\n[camoe]\nexperts = ["fusion"]\n',
    "camoe-expert-unknown": b'heads = ["camoe"]\nlosses = ["infonce"]\n[camoe]\nexperts = [["bogus"]]\n',
    "camoe-aux-nan": b'heads = ["camoe"]\n[camoe]\naux_weight = [nan]\n',
    "camoe-gate-unknown": b'heads = ["camoe"]\nlosses = ["infonce"]\n[camoe]\ngate = ["sometimes"]\n',
    "not-utf8": b'\xff\xfeheads = ["meanp"]\n',
    "invalid-toml": b"heads = [meanp\n",
    "deeply-nested": b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n",
}


def _bad_grid(body: bytes) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        grid = tmp / "grid.toml"
        grid.write_bytes(body)
        results = tmp / "results"
        out = expect_error(_ablate(ctx, results, "--grid", grid), "grid.toml")
        if out.kind == "clear_error" and _results(results):
            return Outcome("silently_wrong", "an error, but a result file was written")
        return out

    return run


def _grid_is_folder(tmp: Path, ctx: Context) -> Outcome:
    (tmp / "grid.toml").mkdir()
    return expect_error(_ablate(ctx, tmp / "results", "--grid", tmp / "grid.toml"), "grid.toml")


# ------------------------------------------------------------------ damaged results in the results folder

DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda b: b[: len(b) // 3],
    "empty": lambda b: b"",
    "not-utf8": lambda b: b"\xff\xfe" + b[2:],
    "foreign-run-id": lambda b: json.dumps({**json.loads(b), "run_id": "other.meanp.x.s0"}).encode(),
    "wrong-schema": lambda b: json.dumps({**json.loads(b), "schema": 99}).encode(),
    "not-an-object": lambda b: b"[1, 2, 3]",
    "deeply-nested": lambda b: b"[" * 100000 + b"]" * 100000,
}


def _damaged_result(command: str, damage: Callable[[bytes], bytes]) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        results = tmp / "results"

        def go() -> Any:
            if command == "train":
                return _train(ctx, results)
            if command == "eval":
                return _eval(ctx, results, "--head", "zeroshot")
            return _ablate(ctx, results)

        first = go()
        if first.code != 0:
            return Outcome("silently_wrong", f"the clean run failed: {first.text[-200:]}")
        path = _results(results)[0]
        path.write_bytes(damage(path.read_bytes()))
        r = go()

        def check() -> str | None:
            if "skipped" in r.text and "0 skipped" not in r.text:
                return "an invalid result was taken as done (skipped)"
            if "warning" not in r.err:
                return "the invalid result was replaced without a word"
            return _valid_results(results)

        return expect_ok(r, check)

    return run


def _result_is_link(target: str) -> Callable[[Path, Context], Outcome]:
    """The result file is a symbolic link to a device or to nothing: not a result, redo and replace."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        results = tmp / "results"
        if _train(ctx, results).code != 0:
            return Outcome("silently_wrong", "the clean run failed")
        path = _results(results)[0]
        path.unlink()
        path.symlink_to(target)
        r = _train(ctx, results)
        return expect_ok(r, lambda: None if not path.is_symlink() else "the link was left as the result")

    return run


def _result_path_is_folder(command: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        results = tmp / "results"
        clean = {
            "train": lambda: _train(ctx, results),
            "eval": lambda: _eval(ctx, results, "--head", "zeroshot"),
        }
        if clean[command]().code != 0:
            return Outcome("silently_wrong", "the clean run failed")
        path = _results(results)[0]
        path.unlink()
        path.mkdir()
        return expect_error(clean[command](), path.name)

    return run


# ------------------------------------------------------------------ unwritable outputs


def _unwritable(command: str, where: str, kind: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        results, ckpt = tmp / "results", tmp / "head.pt"
        if kind == "parent-is-file":
            (tmp / "file").write_text("x")
            target = tmp / "file" / "out"
        elif kind == "output-is-folder":
            target = tmp / "folder.pt"
            target.mkdir()
        else:
            target = tmp / "ro" / "out"
        if where == "results":
            results = target
        else:
            ckpt = target
        with _readonly(tmp / "ro") as how:
            if command == "train":
                r = _train(ctx, results, "--save-checkpoint", ckpt)
            elif command == "eval":
                r = _eval(ctx, results, "--head", "zeroshot")
            else:
                r = _ablate(ctx, results)
        if kind == "read-only" and not how:
            return expect_ok(r)  # root without mount: the folder is writable after all
        return expect_error(r, "cannot write", "out" if kind != "output-is-folder" else "folder.pt")

    return run


# ------------------------------------------------------------------ checkpoints


def _trained_checkpoint(ctx: Context) -> Path:
    def make(folder: Path) -> Path:
        ckpt = folder / "head.pt"
        r = _train(ctx, folder / "results", "--save-checkpoint", ckpt)
        if r.code != 0:
            raise RuntimeError(f"fixture: train --save-checkpoint failed: {r.text[-300:]}")
        return ckpt

    return ctx.once("train-checkpoint", make)


def _bad_checkpoint(
    make: Callable[[Path, Context], Path], *mentions: str
) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        ckpt = make(tmp, ctx)
        r = _eval(ctx, tmp / "results", "--checkpoint", ckpt)
        out = expect_error(r, ckpt.name, *mentions)
        if "weights_only" in r.text:
            return Outcome("silently_wrong", "torch's weights_only advice reached the user")
        return out

    return run


def _ck_junk(tmp: Path, ctx: Context) -> Path:
    (tmp / "junk.pt").write_bytes(b"\x80\x02}q\x00garbage")
    return tmp / "junk.pt"


def _ck_unsafe_pickle(tmp: Path, ctx: Context) -> Path:
    import torch

    torch.save({"format": "vtrbench-head-1", "obj": Context(tmp)}, tmp / "unsafe.pt")
    return tmp / "unsafe.pt"


def _ck_truncated(tmp: Path, ctx: Context) -> Path:
    data = _trained_checkpoint(ctx).read_bytes()
    (tmp / "cut.pt").write_bytes(data[: len(data) // 2])
    return tmp / "cut.pt"


def _ck_folder(tmp: Path, ctx: Context) -> Path:
    (tmp / "dir.pt").mkdir()
    return tmp / "dir.pt"


def _ck_missing(tmp: Path, ctx: Context) -> Path:
    return tmp / "missing.pt"


def _ck_edit(tmp: Path, ctx: Context, name: str, **changes: Any) -> Path:
    import torch

    saved = torch.load(_trained_checkpoint(ctx), weights_only=True)
    saved.update(changes)
    torch.save(saved, tmp / name)
    return tmp / name


def _ck_other_head(tmp: Path, ctx: Context) -> Path:
    return _ck_edit(tmp, ctx, "other_head.pt", head="seqtransf")


def _ck_other_width(tmp: Path, ctx: Context) -> Path:
    from vtrbench.factory import create_head

    return _ck_edit(
        tmp, ctx, "wide.pt", embed_dim=32, state_dict=create_head("meanp", embed_dim=32).state_dict()
    )


def _ck_other_cache(tmp: Path, ctx: Context) -> Path:
    import torch

    saved = torch.load(_trained_checkpoint(ctx), weights_only=True)
    return _ck_edit(tmp, ctx, "other_cache.pt", config={**saved["config"], "cache_hash": "0" * 16})


def _ck_no_tag(tmp: Path, ctx: Context) -> Path:
    return _ck_edit(tmp, ctx, "no_tag.pt", format="something-else")


def _ck_missing_key(tmp: Path, ctx: Context) -> Path:
    import torch

    saved = torch.load(_trained_checkpoint(ctx), weights_only=True)
    saved.pop("state_dict")
    torch.save(saved, tmp / "no_weights.pt")
    return tmp / "no_weights.pt"


def _checkpoint_missing_after_result(tmp: Path, ctx: Context) -> Outcome:
    results, ckpt = tmp / "results", tmp / "ck" / "head.pt"
    if _train(ctx, results).code != 0:
        return Outcome("silently_wrong", "the clean run failed")
    r = _train(ctx, results, "--save-checkpoint", ckpt)
    return expect_ok(r, lambda: None if ckpt.is_file() else "the rerun did not write the checkpoint")


def _checkpoint_damaged_after_result(tmp: Path, ctx: Context) -> Outcome:
    results, ckpt = tmp / "results", tmp / "head.pt"
    if _train(ctx, results, "--save-checkpoint", ckpt).code != 0:
        return Outcome("silently_wrong", "the clean run failed")
    ckpt.write_bytes(b"half a checkpoint")
    r = _train(ctx, results, "--save-checkpoint", ckpt)

    def check() -> str | None:
        import torch

        try:
            torch.load(ckpt, weights_only=True)
        except Exception:  # noqa: BLE001
            return "the damaged checkpoint was left in place (the run was skipped)"
        return None

    return expect_ok(r, check)


# ------------------------------------------------------------------ train/test overlap


def _overlap_cache(ctx: Context) -> Path:
    """A custom CSV dataset that lists one video in both splits."""

    def make(folder: Path) -> Path:
        videos = sorted((synthetic_dataset(ctx) / "videos").iterdir())[:6]
        rows = [
            (str(v), f"a caption of clip {i}", "train" if i < 4 else "test") for i, v in enumerate(videos)
        ]
        rows += [
            (str(v), f"a second caption of {i}", "train" if i < 4 else "test") for i, v in enumerate(videos)
        ]
        rows.append((str(videos[0]), "the leaked clip", "test"))
        ann = folder / "ann.csv"
        with ann.open("w", newline="") as f:
            csv.writer(f).writerows([("video", "caption", "split"), *rows])
        out = folder / "overlap.h5"
        argv = ["extract", "--dataset", "custom", "--annotations", ann, "--model", "vtrbench-tiny"]
        argv += ["--pretrained", "none", "--device", "cpu", "--workers", "0", "--quiet", "--output", out]
        r = run_cli(argv)
        if r.code != 0:
            raise RuntimeError(f"fixture: extract of the overlapping custom dataset failed: {r.text[-300:]}")
        return out

    return ctx.once("overlap-cache", make)


SPLITS = ("--train-split", "train", "--test-split", "test")


def _overlap(command: str, allow: bool) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        cache, results = _overlap_cache(ctx), tmp / "results"
        extra = [*SPLITS, *(["--allow-overlap"] if allow else [])]
        if command == "train":
            r = run_cli(train_argv(cache, results, "--batch-size", 4, *extra))
        elif command == "eval":
            r = run_cli(["eval", "--cache", cache, "--head", "zeroshot", *EVAL, "--results", results, *extra])
        else:
            r = run_cli(["ablate", "--cache", cache, *ABLATE, "--results", results, *extra])
        if not allow:
            out = expect_error(r, "--allow-overlap", "1 video(s)")
            if out.kind == "clear_error" and _results(results):
                return Outcome("silently_wrong", "refused, but a result was written")
            return out

        def recorded() -> str | None:
            files = _results(results)
            if not files:
                return "no result"
            p = json.loads(files[0].read_text())["protocol"]
            return None if p.get("allow_overlap") is True else "allow_overlap is not recorded"

        return expect_ok(r, recorded)

    return run


# ------------------------------------------------------------------ the list


def cases() -> list[Case]:
    out: list[Case] = []
    for command, option, value in BAD_OPTIONS:
        name = f"option-{command}{option}={value}"[:60]
        out.append(Case(AREA, name, _bad_option(command, option, value)))
    for name, body in GRIDS.items():
        out.append(Case(AREA, f"grid-{name}", _bad_grid(body)))
    out.append(Case(AREA, "grid-is-a-folder", _grid_is_folder))
    for name, damage in DAMAGES.items():
        # CI keeps three kinds of damage per command (each case trains twice); the full run has all
        ci = name in ("truncated", "not-utf8", "foreign-run-id")
        out.append(Case(AREA, f"result-{name}-train", _damaged_result("train", damage), quick=ci))
    for name in ("truncated", "not-utf8", "foreign-run-id"):
        quick = name == "truncated"  # eval and ablate share train's rule: CI keeps one case of each
        out.append(Case(AREA, f"result-{name}-eval", _damaged_result("eval", DAMAGES[name]), quick=quick))
        out.append(Case(AREA, f"result-{name}-ablate", _damaged_result("ablate", DAMAGES[name]), quick=quick))
    for command in ("train", "eval"):
        out.append(Case(AREA, f"result-path-is-folder-{command}", _result_path_is_folder(command)))
    out.append(Case(AREA, "result-link-to-dev-zero", _result_is_link("/dev/zero")))
    out.append(Case(AREA, "result-dangling-link", _result_is_link("/nonexistent/vtrbench-result.json")))
    for kind in ("parent-is-file", "output-is-folder", "read-only"):
        out.append(
            Case(AREA, f"unwritable-train-checkpoint-{kind}", _unwritable("train", "checkpoint", kind))
        )
        if kind != "output-is-folder":  # a results folder is a folder: result-path-is-folder-* covers that
            out.append(Case(AREA, f"unwritable-train-results-{kind}", _unwritable("train", "results", kind)))
            out.append(Case(AREA, f"unwritable-eval-results-{kind}", _unwritable("eval", "results", kind)))
            out.append(
                Case(AREA, f"unwritable-ablate-results-{kind}", _unwritable("ablate", "results", kind))
            )
    for name, make, mentions in (
        ("junk", _ck_junk, ()),
        ("unsafe-pickle", _ck_unsafe_pickle, ()),
        ("truncated", _ck_truncated, ()),
        ("folder", _ck_folder, ("folder",)),
        ("missing", _ck_missing, ()),
        ("other-head", _ck_other_head, ("seqtransf",)),
        ("other-width", _ck_other_width, ("width",)),
        ("other-cache", _ck_other_cache, ()),
        ("no-format-tag", _ck_no_tag, ()),
        ("no-weights", _ck_missing_key, ()),
    ):
        out.append(Case(AREA, f"checkpoint-{name}", _bad_checkpoint(make, *mentions)))
    out.append(Case(AREA, "checkpoint-missing-after-result", _checkpoint_missing_after_result))
    out.append(Case(AREA, "checkpoint-damaged-after-result", _checkpoint_damaged_after_result))
    for command in ("train", "eval", "ablate"):
        out.append(Case(AREA, f"overlap-{command}", _overlap(command, allow=False)))
    out.append(Case(AREA, "overlap-train-allowed", _overlap("train", allow=True)))
    out.append(Case(AREA, "overlap-eval-allowed", _overlap("eval", allow=True)))
    return out


__all__ = ["cases"]
