"""The command line through its real entry point ``vtrbench.cli.main``: help, names, inspect, datasets.

User errors must come back as one message and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vtrbench import __version__

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "open_clip", "av", "h5py")
DATASETS = ("activitynet", "custom", "didemo", "lsmdc", "msrvtt", "msvd", "synthetic")

_HELP_CHILD = """
import sys, time
t0 = time.perf_counter()
from vtrbench.cli import main
calls = (["--help"], ["extract", "--help"], ["train", "--help"], ["datasets", "list"])
codes = [main(argv) for argv in calls]
seconds = time.perf_counter() - t0
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("RESULT", codes, heavy, round(seconds, 3))
"""


def test_help_does_not_import_heavy_modules() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", _HELP_CHILD.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: vtrbench [OPTIONS] COMMAND" in proc.stdout and "--pretrained" in proc.stdout
    for name in DATASETS:
        assert f"\n{name}  built in\n" in proc.stdout
    result = proc.stdout[proc.stdout.index("RESULT") :].split(maxsplit=1)[1]
    assert result.startswith("[0, 0, 0, 0] []"), result


def test_version(run_cli: Callable[..., Any]) -> None:
    r = run_cli("--version")
    assert r.code == 0 and __version__ in r.out


def test_unknown_command_is_a_usage_error(run_cli: Callable[..., Any]) -> None:
    r = run_cli("extrct")
    assert r.code == 2 and "extrct" in r.err and "Traceback" not in r.text


# ----------------------------------------------------------------- names


def test_unknown_dataset_suggests_the_close_one(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    for argv in (
        ["extract", "--dataset", "msrvt", "--annotations", tmp_path, "--output", tmp_path / "c.h5"],
        ["datasets", "describe", "msrvt", "--annotations", tmp_path],
    ):
        r = run_cli(*argv)
        assert r.code == 2
        assert "unknown dataset 'msrvt'; did you mean 'msrvtt'?" in r.err
        assert "Traceback" not in r.text
    assert not list(tmp_path.iterdir())


def _synth_argv(synth_dir: Path, out: Path, *extra: Any) -> list[Any]:
    return [
        "extract",
        "--dataset",
        "synthetic",
        "--annotations",
        synth_dir,
        "--output",
        out,
        "--quiet",
        *extra,
    ]


def test_unknown_model_suggests_the_close_one(
    run_cli: Callable[..., Any], synth_dir: Path, tmp_path: Path
) -> None:
    r = run_cli(
        *_synth_argv(synth_dir, tmp_path / "c.h5", "--model", "vtrbench-tinny", "--pretrained", "none")
    )
    assert r.code == 2
    assert "unknown model 'vtrbench-tinny'" in r.err and "did you mean 'vtrbench-tiny'" in r.err
    assert "Traceback" not in r.text
    assert not list(tmp_path.iterdir())


def test_unknown_pretrained_tag_suggests_the_close_one(
    run_cli: Callable[..., Any], synth_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "c.h5"
    r = run_cli(
        *_synth_argv(synth_dir, out, "--model", "ViT-B-32", "--pretrained", "opnai", "--device", "cpu")
    )
    assert r.code == 2
    assert "unknown pretrained tag 'opnai'" in r.err and "did you mean 'openai'" in r.err
    assert "Traceback" not in r.text
    assert not out.exists() and not Path(str(out) + ".parts").exists()


def test_missing_checkpoint_file(run_cli: Callable[..., Any], synth_dir: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "weights" / "clip.pt"
    argv = _synth_argv(synth_dir, tmp_path / "c.h5", "--model", "vtrbench-tiny", "--device", "cpu")
    r = run_cli(*argv, "--pretrained", ckpt)
    assert r.code == 2 and f"checkpoint file not found: {ckpt}" in r.err
    assert "Traceback" not in r.text


def test_failed_extract_leaves_no_lock_file(
    run_cli: Callable[..., Any], synth_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "c.h5"
    r = run_cli(
        *_synth_argv(synth_dir, out, "--model", "ViT-B-32", "--pretrained", "opnai", "--device", "cpu")
    )
    assert r.code == 2
    assert not Path(str(out) + ".lock").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fps", "0"], "--fps must be >= 1"),
        (["--device", "tpu"], "--device 'tpu': use cpu, cuda, cuda:N or auto"),
        (["--sampling", "middle"], "Invalid value for '--sampling'"),
    ],
)
def test_bad_options_are_one_line_errors(
    run_cli: Callable[..., Any], synth_dir: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    r = run_cli(*_synth_argv(synth_dir, tmp_path / "c.h5", "--model", "vtrbench-tiny", *extra))
    assert r.code == 2 and message in r.err
    assert "Traceback" not in r.text


def test_synth_rejects_an_odd_video_count(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    r = run_cli("synth", tmp_path / "s", "--videos", "5", "--quiet")
    assert r.code == 2 and "videos must be even" in r.err
    assert "Traceback" not in r.text


# ----------------------------------------------------------------- listings


def test_datasets_list(run_cli: Callable[..., Any]) -> None:
    r = run_cli("datasets", "list")
    assert r.code == 0 and r.out.splitlines() == [f"{d}  built in" for d in sorted(DATASETS)]


def test_heads_and_losses_say_where_each_comes_from(run_cli: Callable[..., Any]) -> None:
    from vtrbench.heads.base import list_heads
    from vtrbench.losses.base import list_losses

    for command, names in (("heads", list_heads()), ("losses", list_losses())):
        r = run_cli(command)
        assert r.code == 0 and r.out.splitlines() == [f"{n}  built in" for n in sorted(names)], r.text


def test_heads_describe_prints_options_defaults_and_space(run_cli: Callable[..., Any]) -> None:
    r = run_cli("heads", "describe", "camoe")
    assert r.code == 0, r.text
    rows: dict[str, list[str]] = {}
    for line in r.out.splitlines():  # the options table comes first (the docstring below also indents)
        if line.startswith("  "):
            rows.setdefault(line.split()[0], line.split(None, 2)[1:])
    # every option of the schema, with the constructor's default and the schema's accepted values
    assert rows["streams"] == ["pos", "one of pos, learned, eot"]
    assert rows["aux_weight"] == ["0.0", "a finite number >= 0"]
    assert rows["layers"] == ["2", "an integer >= 1"]
    assert rows["heads"] == ["auto", "an integer >= 1"]
    assert rows["logit_scale_init"] == ["100.0", "a finite number > 0 and <= 100"]
    assert rows["experts"] == [
        "action,entity,fusion,scene",
        "a non-empty list of names from action, entity, fusion, scene",
    ]
    assert r.out.startswith("head camoe (built in)\n") and "search space of head camoe" in r.out
    assert "head.layers" in r.out and "depth of each temporal expert's transformer" in r.out
    r = run_cli("losses", "describe", "dsl")
    assert r.code == 0 and "temperature" in r.out and "1000.0" in r.out and "loss.temperature" in r.out
    r = run_cli("heads", "describe", "zeroshot")
    assert r.code == 0 and "options: none" in r.out


@pytest.mark.parametrize(
    "kind, name, suggestion",
    [
        ("head", "foo", None),  # the "oo" it shares with "xpool" is no likeness
        ("head", "camo", "camoe"),
        ("loss", "dls", "dsl"),
        ("head", "xpol", "xpool"),
    ],
)
def test_describe_suggests_only_a_close_name(
    run_cli: Callable[..., Any], kind: str, name: str, suggestion: str | None
) -> None:
    r = run_cli("heads" if kind == "head" else "losses", "describe", name)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.text
    assert f"unknown {kind} {name!r}" in r.err
    if suggestion is None:
        assert "did you mean" not in r.err
    else:
        assert f"did you mean {suggestion!r}?" in r.err


def test_eval_help_explains_test_split(run_cli: Callable[..., Any]) -> None:
    r = run_cli("eval", "--help")
    assert r.code == 0
    text = " ".join(r.out.split())
    assert "--test-split TEXT Split to evaluate on [default: the dataset's standard test split]." in text


def test_models_lists_the_tiny_model(run_cli: Callable[..., Any]) -> None:
    r = run_cli("models")
    names = r.out.split()
    assert r.code == 0 and "vtrbench-tiny" in names and "ViT-B-32" in names
    assert names == sorted(names)


def test_describe_synthetic_without_annotations(run_cli: Callable[..., Any]) -> None:
    from vtrbench.datasets.synthetic import SynthConfig

    default = SynthConfig()
    r = run_cli("datasets", "describe", "synthetic", "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    splits = info["splits"]
    assert sorted(splits) == ["test", "train"]
    assert sum(s["videos"] for s in splits.values()) == default.videos
    for s in splits.values():
        assert s["videos"] > 0 and s["captions"] == default.captions_per_video * s["videos"]
    assert (info["default_train"], info["default_test"]) == ("train", "test")
    assert (info["max_words"], info["max_frames"], info["paragraph"]) == (32, 12, False)
    assert any("default plan" in w for w in info["warnings"])


def test_describe_a_rendered_synthetic_folder(run_cli: Callable[..., Any], synth_dir: Path) -> None:
    r = run_cli("datasets", "describe", "synthetic", "--annotations", synth_dir, "--json")
    assert r.code == 0, r.err
    splits = json.loads(r.out)["splits"]
    meta = json.loads((synth_dir / "meta.json").read_text())["splits"]
    assert splits == meta
    assert sum(s["videos"] for s in splits.values()) == 12
    assert sum(s["captions"] for s in splits.values()) == 36


def test_describe_needs_annotations_for_real_datasets(run_cli: Callable[..., Any]) -> None:
    r = run_cli("datasets", "describe", "msrvtt")
    assert r.code == 2 and "needs --annotations" in r.err


# ----------------------------------------------------------------- inspect


def test_inspect_prints_how_the_cache_was_made(
    run_cli: Callable[..., Any], synth_cache: Path, synth_dir: Path
) -> None:
    from vtrbench.cache import FeatureCache

    with FeatureCache(synth_cache) as cache:
        chash = cache.config_hash
    r = run_cli("inspect", synth_cache)
    assert r.code == 0, r.err
    rows = {}
    for line in r.out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│|").split("│")]
        if len(cells) >= 2 and cells[0]:
            rows.setdefault(cells[0], cells[1:])
    assert rows["model"][0] == "vtrbench-tiny"
    assert rows["pretrained"][0] == "none"
    assert rows["config_hash"][0] == chash
    assert rows["n_videos"][0] == "12" and rows["n_texts"][0] == "36" and rows["n_failed"][0] == "0"
    assert rows["random_weights"][0] == "True"
    assert rows["videos/frames"][:2] == ["(12, 12, 64)", "float16"]
    for split, counts in json.loads((synth_dir / "meta.json").read_text())["splits"].items():
        assert rows[split][:2] == [str(counts["videos"]), str(counts["captions"])]


def test_inspect_refuses_what_is_not_a_cache(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    r = run_cli("inspect", tmp_path / "none.h5")
    assert r.code == 2 and "no feature cache at" in r.err
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    r = run_cli("inspect", junk)
    assert r.code == 2 and "is not a readable HDF5 file" in r.err
    assert "Traceback" not in r.text


FIXTURE_RESULT = REPO / "tests" / "fixtures" / "results" / "msrvtt" / "msrvtt.camoe.dsl.06636164.s0.json"


def test_inspect_result_prints_a_summary_and_json_the_whole_file(
    run_cli: Callable[..., Any], tmp_path: Path, synth_cache: Path
) -> None:
    whole = json.loads(FIXTURE_RESULT.read_text())
    r = run_cli("inspect", FIXTURE_RESULT)
    assert r.code == 0, r.text
    assert len(r.out.splitlines()) < 40  # the whole file is 1,500+ lines of JSON on a real test split
    shown_values = (whole["run_id"], whole["label"], whole["cache"]["path"], "ViT-B-32/openai",
                    "train 9k -> test 1k-A", "20 queries", "epochs 5", "vtrbench 0.1.0")  # fmt: skip
    for shown in shown_values:
        assert shown in r.out, shown
    seed_row = next(line for line in r.out.splitlines() if line.strip("│ ").startswith("seed"))
    assert seed_row.split("│")[2].strip() == str(whole["seed"])
    raw = next(line for line in r.out.splitlines() if line.strip().startswith("raw "))
    m = whole["metrics"]["raw"]
    want = ["raw"]
    for d in ("t2v", "v2t"):
        want += [
            "/".join(f"{m[d][k]:.1f}" for k in ("R@1", "R@5", "R@10")),
            f"{m[d]['MdR']:g}/{m[d]['MnR']:.1f}",
        ]
    assert raw.split() == [*want, f"{m['RSum']:.1f}"]
    assert any(line.strip().startswith("dsl* ") for line in r.out.splitlines())  # transductive
    assert "[5, 1, 1" not in r.out and "per_query_ranks" in r.err and "--json" in r.err
    r = run_cli("inspect", FIXTURE_RESULT, "--json")
    assert r.code == 0 and json.loads(r.out) == whole
    random = dict(whole, cache=dict(whole["cache"], random_weights=True))
    (tmp_path / "r.json").write_text(json.dumps(random))
    assert "RANDOM weights" in run_cli("inspect", tmp_path / "r.json").out
    r = run_cli("inspect", synth_cache, "--json")
    assert r.code == 2 and "--json is for result files" in r.err
