"""Faults of sharded extraction and torchrun (issue 19): parts that hold other rows than their name says,
absurd preprocessing values, ``--shard`` spellings, refused shards told what to do, locks between shards
and unsharded runs, and (``quick=False``) ``kill -9`` of shards, torchrun agents and ranks.

Kill cases check the resume (identical to an uninterrupted single-process cache) and that no process of
the case survives: every process whose command line names the case's folder is found by scanning /proc.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py

from benchmarks.faults.core import (
    Case,
    CliRun,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    extract_argv,
    run_cli,
    synthetic_dataset,
    tiny_cache,
)
from benchmarks.faults.extract_cases import REPO, _alive, _kill_at, cache_difference

AREA = "shard"


def _data(ctx: Context) -> Path:
    return synthetic_dataset(ctx)


def _parts(out: Path) -> Path:
    return Path(str(out) + ".parts")


# ------------------------------------------------------------------ a finished, unassembled shard set


def _shard_set(ctx: Context) -> Path:
    """Every part of an extraction present, not assembled (read-only: copy it)."""

    def make(folder: Path) -> Path:
        from vtrbench.extract import locks
        from vtrbench.shard import Shard

        out = folder / "set.h5"
        # one shard of one makes every part; another shard "still running" (its lock held here)
        # keeps it from assembling: half the cost of running both shards of two
        with locks.output_lock(out, Shard(1, 2)):
            r = run_cli(extract_argv(_data(ctx), out, "--shard", "0/1"))
        if r.code or out.exists():
            raise RuntimeError(f"fixture: the shard run failed: {r.text[-300:]}")
        return out

    return ctx.once("shard-set", make)


def _foreign_set(ctx: Context) -> Path:
    """The parts of the same dataset extracted with another option (--max-words 16)."""

    def make(folder: Path) -> Path:
        # shard 0/2 makes video chunks 0 and 2, the text part and the backbone part: all that is planted
        out = folder / "foreign.h5"
        r = run_cli(extract_argv(_data(ctx), out, "--max-words", "16", "--shard", "0/2"))
        if r.code:
            raise RuntimeError(f"fixture: foreign shard failed: {r.text[-300:]}")
        return out

    return ctx.once("foreign-set", make)


def _copy_set(ctx: Context, tmp: Path) -> Path:
    src = _shard_set(ctx)
    out = tmp / "set.h5"
    shutil.copytree(_parts(src), _parts(out))
    return out


def _swap(a: Path, b: Path) -> None:
    t = a.with_name("swap.tmp")
    os.replace(a, t)
    os.replace(b, a)
    os.replace(t, b)


def _strip_identity(path: Path) -> None:
    with h5py.File(path, "a") as f:
        for key in ("kind", "chunk", "row_start", "row_end", "rows_sha256"):
            if key in f.attrs:
                del f.attrs[key]


def _tamper(path: Path, key: str, value: Any) -> None:
    with h5py.File(path, "a") as f:
        f.attrs[key] = value


# Each damage returns the part name the refusal must name.
def _d_swap_videos_1_3(p: Path, ctx: Context) -> str:
    _swap(p / "videos-00001.h5", p / "videos-00003.h5")
    return "videos-00001.h5"


def _d_swap_videos_0_1(p: Path, ctx: Context) -> str:
    _swap(p / "videos-00000.h5", p / "videos-00001.h5")
    return "videos-00000.h5"


def _d_swap_video_text(p: Path, ctx: Context) -> str:
    _swap(p / "videos-00000.h5", p / "texts-00000.h5")
    return "videos-00000.h5"


def _d_rename_over(p: Path, ctx: Context) -> str:
    os.replace(p / "videos-00003.h5", p / "videos-00002.h5")
    return "videos-00002.h5"


def _d_duplicate(p: Path, ctx: Context) -> str:
    shutil.copyfile(p / "videos-00001.h5", p / "videos-00002.h5")
    return "videos-00002.h5"


def _d_rotate(p: Path, ctx: Context) -> str:
    names = [p / f"videos-0000{k}.h5" for k in range(4)]
    tmp = p / "rot.tmp"
    os.replace(names[0], tmp)
    for a, b in zip(names[1:], names[:-1], strict=True):
        os.replace(a, b)
    os.replace(tmp, names[-1])
    return "videos-00000.h5"


def _d_foreign_video(p: Path, ctx: Context) -> str:
    shutil.copyfile(_parts(_foreign_set(ctx)) / "videos-00002.h5", p / "videos-00002.h5")
    return "videos-00002.h5"


def _d_foreign_text(p: Path, ctx: Context) -> str:
    shutil.copyfile(_parts(_foreign_set(ctx)) / "texts-00000.h5", p / "texts-00000.h5")
    return "texts-00000.h5"


def _d_other_rows_digest(p: Path, ctx: Context) -> str:
    _tamper(p / "videos-00001.h5", "rows_sha256", "0" * 64)  # same chunk and config, other videos
    return "videos-00001.h5"


def _d_other_row_range(p: Path, ctx: Context) -> str:
    _tamper(p / "videos-00001.h5", "row_start", 3)
    return "videos-00001.h5"


def _d_kind_relabelled(p: Path, ctx: Context) -> str:
    _tamper(p / "videos-00003.h5", "kind", "texts")
    return "videos-00003.h5"


def _d_no_identity(p: Path, ctx: Context) -> str:
    _strip_identity(p / "videos-00002.h5")  # a part of an older vtrbench: counted missing, remade
    return "videos-00002.h5"


DAMAGES: list[tuple[str, Callable[[Path, Context], str], bool]] = [
    # (name, damage, quick)
    ("swap-videos-1-3", _d_swap_videos_1_3, True),
    ("swap-videos-0-1", _d_swap_videos_0_1, False),
    ("swap-video-and-text", _d_swap_video_text, False),
    ("rename-over-another", _d_rename_over, False),
    ("duplicate-part", _d_duplicate, False),
    ("rotate-all-video-parts", _d_rotate, False),
    ("foreign-video-part", _d_foreign_video, False),
    ("foreign-text-part", _d_foreign_text, False),
    ("tampered-rows-digest", _d_other_rows_digest, False),
    ("tampered-row-range", _d_other_row_range, False),
    ("relabelled-kind", _d_kind_relabelled, False),
    ("no-identity-record", _d_no_identity, False),
]


def _identity_case(name: str, damage: Callable[[Path, Context], str], quick: bool, how: str) -> Case:
    """``how``: "assemble" (--assemble), "resume" (a shard's rerun) or "unsharded" (a plain rerun)."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        out = _copy_set(ctx, tmp)
        named = damage(_parts(out), ctx)
        before = {q.name: q.read_bytes() for q in _parts(out).iterdir()}
        extra = {"assemble": ["--assemble"], "resume": ["--shard", "1/2"], "unsharded": []}[how]
        r = run_cli(extract_argv(_data(ctx), out, *extra))
        if name == "no-identity-record":
            if how == "assemble":
                return expect_error(r, named, "missing")
            # the part is made again: the result must equal the single-process cache
            if how == "resume":
                r = run_cli(extract_argv(_data(ctx), out, "--shard", "0/2"))
            return expect_ok(r, lambda: cache_difference(out, tiny_cache(ctx)))
        outcome = expect_error(r, named)
        if outcome.kind == "clear_error":
            if out.exists():
                return Outcome("silently_wrong", "a cache was written from misplaced parts")
            if {q.name: q.read_bytes() for q in _parts(out).iterdir()} != before:
                return Outcome("lost", "the refusal changed the parts folder")
        return outcome

    return Case(AREA, f"part-{name}-{how}", run, quick=quick and how == "assemble")


def _swap_back_case() -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        out = _copy_set(ctx, tmp)
        _d_swap_videos_1_3(_parts(out), ctx)
        refused = run_cli(extract_argv(_data(ctx), out, "--assemble"))
        if refused.code == 0:
            return Outcome("silently_wrong", "swapped parts were assembled")
        _d_swap_videos_1_3(_parts(out), ctx)
        return expect_ok(
            run_cli(extract_argv(_data(ctx), out, "--assemble")),
            lambda: cache_difference(out, tiny_cache(ctx)),
        )

    return Case(AREA, "part-swapped-back-assembles", run, quick=False)


def _foreign_backbone_case() -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        out = _copy_set(ctx, tmp)
        bb = _parts(out) / "backbone.h5"
        if not bb.exists():
            return Outcome("handled", "this model stores no backbone part")
        shutil.copyfile(_parts(_foreign_set(ctx)) / "backbone.h5", bb)
        return expect_error(run_cli(extract_argv(_data(ctx), out, "--assemble")), "backbone")

    return Case(AREA, "part-foreign-backbone-assemble", run, quick=False)


# ------------------------------------------------------------------ preprocessing values


PREPROCESSING = [
    ("std-tiny", "--image-std", "1e-30"),
    ("std-below-minimum", "--image-std", "0.0009"),
    ("std-zero", "--image-std", "0"),
    ("std-negative", "--image-std", "-0.27"),
    ("std-one-negative", "--image-std", "0.27,-0.26,0.27"),
    ("std-nan", "--image-std", "nan"),
    ("std-inf", "--image-std", "inf"),
    ("std-0-255-scale", "--image-std", "58.395,57.12,57.375"),
    ("std-two-values", "--image-std", "0.2,0.3"),
    ("std-four-values", "--image-std", "0.2,0.3,0.3,0.3"),
    ("std-empty", "--image-std", ""),
    ("std-text", "--image-std", "wide"),
    ("mean-huge", "--image-mean", "1e30"),
    ("mean-huge-negative", "--image-mean", "-1e30"),
    ("mean-nan", "--image-mean", "nan"),
    ("mean-inf", "--image-mean", "inf"),
    ("mean-0-255-scale", "--image-mean", "123.675,116.28,103.53"),
    ("mean-two-values", "--image-mean", "0.5,0.5"),
    ("mean-empty", "--image-mean", ""),
]


def _preprocessing_case(name: str, option: str, value: str) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        out = tmp / "out.h5"
        outcome = expect_error(run_cli([*extract_argv(_data(ctx), out), option, value]), option)
        if outcome.kind == "clear_error" and (out.exists() or _parts(out).exists()):
            return Outcome("silently_wrong", "a refused value left a cache or parts behind")
        return outcome

    quick = name in ("std-tiny", "mean-huge")
    return Case(AREA, f"preprocess-{name}", run, quick=quick)


def _api_preprocessing_case(name: str, change: dict[str, Any]) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        import dataclasses

        from vtrbench.config import ExtractConfig
        from vtrbench.errors import VtrbenchError
        from vtrbench.extract.pipeline import RunOptions, extract_features

        cfg = dataclasses.replace(
            ExtractConfig(
                dataset="synthetic", dataset_fingerprint="x", model="vtrbench-tiny", pretrained="none"
            ),
            **change,
        )
        try:
            extract_features(None, cfg, tmp / "out.h5", RunOptions(progress=False))  # type: ignore[arg-type]
        except VtrbenchError as e:
            text = str(e)
            if "\n" in text or not any(k in text for k in change):
                return Outcome("silently_wrong", f"unclear: {text[:200]}")
            return Outcome("clear_error", text[:200])
        return Outcome("silently_wrong", "the Python API accepted the value")

    return Case(AREA, f"preprocess-api-{name}", run, quick=False)


def _encoder_overflow_case() -> Case:
    """Belt and braces: NaN/inf out of the encoder itself stops the run naming the video."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        import vtrbench.extract.encode as encode

        real = encode.encode_frames

        def overflow(clip: Any, pixels: Any, **kw: Any) -> Any:
            emb, tok = real(clip, pixels, **kw)
            emb = emb.clone()
            emb[-1, 0] = float("nan")
            return emb, tok

        encode.encode_frames = overflow
        try:
            r = run_cli(extract_argv(_data(ctx), tmp / "out.h5"))
        finally:
            encode.encode_frames = real
        return expect_error(r, "NaN/inf", "video ")

    return Case(AREA, "encoder-overflow-refused", run, quick=False)


# ------------------------------------------------------------------ --shard spellings and refusals


SPELLINGS = ["", "1/0", "2/2", "-1/2", "a/b", "1/2/3", "/2", "0/0", "1_0/20", "\u0661/2", "0.5/2", "1"]


def _spelling_case(value: str, command: str) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        if command == "extract":
            out = tmp / "out.h5"
            r = run_cli([*extract_argv(_data(ctx), out), "--shard", value])
            outcome = expect_error(r, "--shard")
            if outcome.kind == "clear_error" and (out.exists() or _parts(out).exists()):
                return Outcome("silently_wrong", "a refused --shard left work behind")
            return outcome
        argv = ["ablate", "--cache", tiny_cache(ctx), "--heads", "meanp", "--epochs", 1, "--device", "cpu",
                "--results", tmp / "res", "--quiet", "--shard", value]  # fmt: skip
        outcome = expect_error(run_cli(argv), "--shard")
        if outcome.kind == "clear_error" and (tmp / "res").exists() and any((tmp / "res").rglob("*.json")):
            return Outcome("silently_wrong", "a refused --shard trained something")
        return outcome

    label = value.encode("unicode_escape").decode().replace("/", "of").replace(" ", "_") or "empty"
    quick = value in ("",) and command == "extract"
    return Case(AREA, f"spelling-{command}-{label}", run, quick=quick)


def _spaced_shard_case() -> Case:
    """' 0/2' is unambiguous: it runs as shard 0/2 (chunks 0 and 2 only)."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        out = tmp / "out.h5"
        r = run_cli([*extract_argv(_data(ctx), out), "--shard", " 0/2"])

        def check() -> str | None:
            made = sorted(q.name for q in _parts(out).glob("videos-*.h5"))
            if made != ["videos-00000.h5", "videos-00002.h5"] or "shard 0/2" not in r.err:
                return f"' 0/2' did not run as shard 0/2: {made}"
            return None

        return expect_ok(r, check)

    return Case(AREA, "spelling-extract-spaced-0of2", run, quick=False)


def _no_overwrite_advice(r: CliRun, *mentions: str) -> Outcome:
    outcome = expect_error(r, *mentions)
    error = next((ln for ln in r.err.splitlines() if ln.startswith("error:")), "")
    if outcome.kind == "clear_error" and "use --overwrite" in error:
        return Outcome(
            "silently_wrong", f"a shard is told to use --overwrite, which it refuses: {error[:160]}"
        )
    return outcome


def _other_options_case(name: str, setup: Callable[[Path, Context], Path], extra: list[Any]) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        out = setup(tmp, ctx)
        return _no_overwrite_advice(run_cli([*extract_argv(_data(ctx), out, "--shard", "1/2"), *extra]))

    return Case(AREA, f"refused-shard-{name}", run, quick=False)


def _setup_parts(tmp: Path, ctx: Context) -> Path:
    return _copy_set(ctx, tmp)


def _setup_bad_manifest(tmp: Path, ctx: Context) -> Path:
    out = _copy_set(ctx, tmp)
    (_parts(out) / "manifest.json").write_text("{")
    return out


def _setup_cache(tmp: Path, ctx: Context) -> Path:
    out = tmp / "set.h5"
    shutil.copyfile(tiny_cache(ctx), out)
    return out


def _setup_not_a_cache(tmp: Path, ctx: Context) -> Path:
    out = tmp / "set.h5"
    out.write_bytes(b"not hdf5" * 100)
    return out


# ------------------------------------------------------------------ locks


def _lock_case(name: str, holder: Any, argv_extra: list[Any], mention: str) -> Case:
    """A writer of the same output is running (its lock held in-process): this run must refuse."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        from vtrbench.extract import locks

        out = _copy_set(ctx, tmp)
        before = {q.name: q.read_bytes() for q in _parts(out).iterdir()}
        with locks.output_lock(out, holder):
            r = run_cli([*extract_argv(_data(ctx), out), *argv_extra])
        outcome = expect_error(r, mention)
        if (
            outcome.kind == "clear_error"
            and {q.name: q.read_bytes() for q in _parts(out).iterdir()} != before
        ):
            return Outcome("lost", "the refused run changed the running shard's parts")
        return outcome

    return Case(AREA, f"lock-{name}", run, quick=name == "unsharded-beside-shard")


def _real_lock_race_case() -> Case:
    """The reported failure with real processes: a shard runs (slowed), an unsharded run starts beside it."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        from benchmarks.faults.extract_cases import _start

        out = tmp / "out.h5"
        marker = tmp / "marker"
        child = _start(extract_argv(_data(ctx), out, "--shard", "0/2"), "pause:1.0", marker, tmp)
        try:
            deadline = time.monotonic() + 120
            while not marker.exists():
                if child.poll() is not None or time.monotonic() > deadline:
                    return Outcome("silently_wrong", "the shard ended before the race")
                time.sleep(0.02)
            r = run_cli(extract_argv(_data(ctx), out))
            child.wait(timeout=300)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        outcome = expect_error(r, "another `vtrbench extract`")
        if outcome.kind != "clear_error":
            return outcome
        if child.returncode != 0:
            return Outcome("lost", f"the shard failed beside the refused run (exit {child.returncode})")
        return expect_ok(
            run_cli(extract_argv(_data(ctx), out, "--shard", "1/2")),
            lambda: cache_difference(out, tiny_cache(ctx)),
        )

    return Case(AREA, "lock-real-race-unsharded-beside-shard", run, quick=False)


# ------------------------------------------------------------------ processes: kills, torchrun


def _survivors(tag: str) -> list[int]:
    """Living processes (not zombies) whose command line names ``tag``, other than this one."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if tag.encode() in cmdline and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _wait_gone(tag: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _survivors(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # clean up after a failed case: the next case must start from nothing
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


def _shard_kill_case(i: int) -> Case:
    """A shard (of a job array) killed at a random moment; its rerun and the other shard give the cache."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        rng = random.Random(5000 + i)
        out = tmp / "out.h5"
        first, second = ("1/2", "0/2") if i % 2 else ("0/2", "1/2")
        if i % 3 == 2:  # the other shard finished first: the killed one is the last, which assembles
            run_cli(extract_argv(_data(ctx), out, "--shard", second))
        argv = extract_argv(_data(ctx), out, "--shard", first)
        problem = _kill_at(argv, "pause:0.3", tmp, rng.uniform(0.0, 1.0))
        killed = not problem
        if problem.startswith("worker"):
            return Outcome("silently_wrong", problem, kill=True)
        left = _wait_gone(str(tmp), 10)
        if left:
            return Outcome("silently_wrong", f"processes survived the kill: {left}", kill=killed)
        r = run_cli(argv)
        if r.code == 0 and not out.exists():
            r = run_cli(extract_argv(_data(ctx), out, "--shard", second))
        outcome = expect_ok(r, lambda: cache_difference(out, tiny_cache(ctx)))
        if outcome.kind != "handled":
            return Outcome(outcome.kind, outcome.detail, kill=killed, identical_resume=False)
        return Outcome("handled", problem or f"shard {first} killed", kill=killed, identical_resume=killed)

    return Case(AREA, f"kill-shard-random-{i:02d}", run, quick=False)


_TORCHRUN_CHILD = r"""
import os, sys, time
point, marker = sys.argv[1], sys.argv[2]
from vtrbench.extract import pipeline, texts, videos
import vtrbench.shard as sharding
def touch():
    open(f"{marker}.{os.environ.get('RANK', 'x')}", "w").close()
if point == "part":
    real_write = pipeline.write_part
    def write_part(path, arrays, *rest):
        real_write(path, arrays, *rest)
        touch()
        time.sleep(0.6)
    for module in (pipeline, videos, texts):  # each module that writes part files
        module.write_part = write_part
elif point == "barrier":
    real_barrier = sharding.barrier
    def barrier(shard):
        touch()
        time.sleep(0.3)
        return real_barrier(shard)
    sharding.barrier = barrier
from vtrbench.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _torchrun(tmp: Path, point: str, argv: list[Any], log: str) -> subprocess.Popen[bytes]:
    script = tmp / "child.py"
    script.write_text(_TORCHRUN_CHILD)
    with socket.socket() as s:  # a free port for the rendezvous (loopback only)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "COLUMNS": "1000", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node=2",
           "--rdzv-backend", "c10d", f"--rdzv-endpoint=127.0.0.1:{port}", str(script), point,
           str(tmp / "marker"), *[str(a) for a in argv]]  # fmt: skip
    return subprocess.Popen(
        cmd,
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / log, "wb"),  # noqa: SIM115
    )


def _ranks(agent: int) -> dict[int, int]:
    """RANK -> pid of the agent's worker processes."""
    from benchmarks.faults.extract_cases import _children

    out = {}
    for pid in _children(agent):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(b"RANK="):
                out[int(item[5:])] = pid
    return out


def _torchrun_kill_case(name: str, point: str, victim: str, delay: float = 0.0) -> Case:
    """Kill -9 the torchrun agent or one rank at ``point``; nothing may survive for more than a minute,
    and a torchrun rerun must give the single-process cache."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        out = tmp / "out.h5"
        argv = extract_argv(_data(ctx), out)
        agent = _torchrun(tmp, point, argv, "run1.log")
        try:
            deadline = time.monotonic() + 300
            while not list(tmp.glob("marker.*")):
                if agent.poll() is not None:
                    return Outcome(
                        "silently_wrong", f"torchrun ended (exit {agent.returncode}) before the kill"
                    )
                if time.monotonic() > deadline:
                    return Outcome("traceback", "hung: the kill point was never reached")
                time.sleep(0.02)
            time.sleep(delay)
            ranks = _ranks(agent.pid)
            if len(ranks) != 2:
                return Outcome("silently_wrong", f"expected 2 ranks, found {ranks}")
            target = agent.pid if victim == "agent" else ranks[int(victim[-1])]
            os.kill(target, signal.SIGKILL)
            if victim != "agent":
                agent.wait(timeout=120)  # the living agent stops the other rank and fails
        finally:
            if agent.poll() is None and victim != "agent":
                agent.kill()
            agent.wait()
        left = _wait_gone(str(tmp), 60)
        if left:
            return Outcome("silently_wrong", f"processes outlived the kill by a minute: {left}", kill=True)
        rerun = _torchrun(tmp, "none", argv, "run2.log")
        try:
            rerun.wait(timeout=400)
        finally:
            if rerun.poll() is None:
                rerun.kill()
                rerun.wait()
        left = _wait_gone(str(tmp), 10)
        if rerun.returncode != 0:
            tail = (tmp / "run2.log").read_text(errors="replace")[-300:]
            return Outcome("silently_wrong", f"the rerun failed: {tail}", kill=True, identical_resume=False)
        problem = cache_difference(out, tiny_cache(ctx))
        if problem or left or _parts(out).exists():
            why = problem or (f"survivors {left}" if left else "parts left behind")
            return Outcome("silently_wrong", why, kill=True, identical_resume=False)
        return Outcome("handled", f"{victim} killed at {point}", kill=True, identical_resume=True)

    return Case(AREA, f"kill-torchrun-{name}", run, quick=False)


def _torchrun_usage_case(name: str, extra: list[Any], mention: str, command: str = "extract") -> Case:
    """A usage error under torchrun: said once (rank 0), and torchrun's summary lists one failure.
    ``command`` extract (a tiny dataset) or ablate (a grid from options, on a cache never opened)."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        if command == "extract":
            argv = [*extract_argv(_data(ctx), tmp / "out.h5"), *extra]
        else:
            argv = ["ablate", "--cache", tmp / "none.h5", "--results", tmp / "r", "--quiet", *extra]
        proc = _torchrun(tmp, "none", argv, "run.log")
        try:
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = (tmp / "run.log").read_text(errors="replace")
        _wait_gone(str(tmp), 10)
        errors = [ln for ln in text.splitlines() if ln.startswith("error:") and mention in ln]
        if proc.returncode == 0:
            return Outcome("silently_wrong", "torchrun exited 0 after a usage error")
        if len(errors) != 1:
            return Outcome("silently_wrong", f"the error was printed {len(errors)} times")
        if "<NO_OTHER_FAILURES>" not in text or f"traceback : error: {errors[0][7:]}" not in text:
            return Outcome("silently_wrong", "torchrun's summary lists more than the one failure, or not it")
        return Outcome("clear_error", errors[0][:200])

    return Case(
        AREA, f"torchrun-{name}" if command == "extract" else f"torchrun-{command}-{name}", run, quick=False
    )


# ------------------------------------------------------------------ the list


def cases() -> list[Case]:
    out: list[Case] = []
    for name, damage, quick in DAMAGES:
        for how in ("assemble", "resume", "unsharded"):
            out.append(_identity_case(name, damage, quick, how))
    out += [_swap_back_case(), _foreign_backbone_case()]
    out += [_preprocessing_case(*row) for row in PREPROCESSING]
    api = {"std-tiny": {"image_std": (1e-30,) * 3}, "std-nan": {"image_std": (0.3, float("nan"), 0.3)},
           "std-negative": {"image_std": (-0.3,) * 3}, "std-huge": {"image_std": (58.0,) * 3},
           "mean-huge": {"image_mean": (1e30,) * 3}, "mean-inf": {"image_mean": (float("inf"),) * 3},
           "mean-two-values": {"image_mean": (0.5, 0.5)}}  # fmt: skip
    out += [_api_preprocessing_case(name, change) for name, change in api.items()]
    out.append(_encoder_overflow_case())
    out += [_spelling_case(v, cmd) for cmd in ("extract", "ablate") for v in SPELLINGS]
    out.append(_spaced_shard_case())
    out += [
        _other_options_case("other-options-than-its-parts", _setup_parts, ["--max-words", "16"]),
        _other_options_case("unreadable-manifest", _setup_bad_manifest, []),
        _other_options_case("cache-of-other-options", _setup_cache, ["--max-words", "16"]),
        _other_options_case("output-not-a-cache", _setup_not_a_cache, []),
        _other_options_case("with-overwrite", _setup_parts, ["--overwrite"]),
    ]
    from vtrbench.shard import Shard

    out += [
        _lock_case("unsharded-beside-shard", Shard(0, 2), [], "another `vtrbench extract`"),
        _lock_case("assemble-beside-shard", Shard(0, 2), ["--assemble"], "another `vtrbench extract`"),
        _lock_case("same-shard-twice", Shard(1, 2), ["--shard", "1/2"], "shard 1/2"),
        _lock_case("shard-beside-unsharded", None, ["--shard", "0/2"], "unsharded or assembling"),
        _lock_case("unsharded-twice", None, [], "another `vtrbench extract`"),
        _real_lock_race_case(),
    ]
    out += [_shard_kill_case(i) for i in range(8)]
    out += [
        _torchrun_kill_case("agent-after-first-part", "part", "agent"),
        _torchrun_kill_case("agent-after-first-part-late", "part", "agent", 0.9),
        _torchrun_kill_case("agent-at-barrier", "barrier", "agent", 0.1),
        _torchrun_kill_case("rank1-after-first-part", "part", "rank1"),
        _torchrun_kill_case("rank0-after-first-part", "part", "rank0"),
        _torchrun_kill_case("rank1-at-barrier", "barrier", "rank1", 0.1),
        _torchrun_usage_case("with-shard", ["--shard", "0/2"], "--shard"),
        _torchrun_usage_case("with-overwrite", ["--overwrite"], "--overwrite"),
        _torchrun_usage_case("bad-image-std", ["--image-std", "1e-30"], "--image-std"),
        _torchrun_usage_case("bad-seeds", ["--seeds", "x"], "--seed", command="ablate"),
        _torchrun_usage_case("unknown-head", ["--heads", "meanpp"], "meanpp", command="ablate"),
        _torchrun_usage_case(
            "bad-head-option", ["--head-option", "logit_scale_init=0"], "logit_scale_init", command="ablate"
        ),  # fmt: skip
    ]
    return out
