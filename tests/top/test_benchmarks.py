"""Smoke runs of the benchmark scripts at tiny sizes: they run, print their tables with the
ratio columns, and the raw numbers they save are consistent with what they print."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"vtrbench_benchmark_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so that worker processes can unpickle its functions
    spec.loader.exec_module(module)
    return module


def test_common_table_and_memory() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import _common
    finally:
        sys.path.remove(str(BENCH))
    text = _common.print_table("T", ["a", "ratio"], [["x", 0.12345], ["y", None]])
    lines = text.strip().splitlines()
    assert lines[0] == "T"
    assert lines[2].split("|")[1:3] == [" a ", " ratio "]
    assert "0.123" in lines[4] and lines[5].split("|")[2].strip() == "-"
    assert _common.target_verdict(0.95, 0.9) == "pass"
    assert _common.target_verdict(0.45, 0.9) == "MISS by 50%"
    assert _common.target_verdict(0.2, 0.1, at_most=True) == "MISS by 100%"


def _common_module() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        import _common
    finally:
        sys.path.remove(str(BENCH))
    return _common


def test_peak_memory_sees_a_64_mib_block() -> None:
    _common = _common_module()
    if not _common.reset_peak_rss():  # an explicit skip, never a silent pass
        pytest.skip("this kernel does not allow rewinding VmHWM (/proc/self/clear_refs)")
    with _common.PeakMemory() as mem:
        block = bytearray(64 * _common.MiB)
        block[::4096] = b"x" * len(block[::4096])  # touch every page
    del block
    assert mem.rss_above_start is not None
    assert 60 * _common.MiB <= mem.rss_above_start


def test_peak_memory_says_none_when_the_peak_cannot_be_rewound(monkeypatch: pytest.MonkeyPatch) -> None:
    _common = _common_module()
    monkeypatch.setattr(_common, "reset_peak_rss", lambda: False)
    with _common.PeakMemory() as mem:
        pass
    assert mem.rss_above_start is None and mem.peak_rss > 0


def test_extract_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("av")
    pytest.importorskip("open_clip")
    extract = load("extract")
    out = tmp_path / "extract.json"
    payload = extract.main(
        [
            "--models", "vtrbench-tiny",
            "--videos", "2",
            "--width", "64",
            "--height", "48",
            "--fps", "10",
            "--seconds", "3",
            "--repeat", "2",
            "--workers", "1",
            "--device", "cpu",
            "--video-dir", str(tmp_path / "videos"),
            "--reference-videos", str(tmp_path / "none"),
            "--json", str(out),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    for column in ("frames/s", "pipeline / bound", "pipeline / slower stage", "pipeline / naive"):
        assert column in printed
    assert "naive (CLIP4Clip-style)" in printed and "Targets (issue #5)" in printed
    saved = json.loads(out.read_text())
    r = saved["results"][0]
    # 3 s at 10 fps, one frame per second: 3 frames per video, the same count on every path;
    # the pipeline sees each of the 2 files twice (--repeat 2), the naive path once.
    assert r["frames"] == 2 * 2 * 3 and r["naive_frames"] == saved["decode_only"]["frames"] == 2 * 3
    assert r["ratio"]["pipeline/bound"] == pytest.approx(r["fps"]["pipeline"] / r["fps"]["bound"])
    assert r["fps"]["bound"] == pytest.approx(r["frames"] / (r["stage1_s"] + r["stage2_s"]))
    # Same frames, same model: the naive path and the pipeline agree up to PIL rounding.
    assert r["naive_agreement_cos"] > 0.99
    assert payload["results"][0]["model"] == "vtrbench-tiny"


def test_train_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = load("train")
    out = tmp_path / "train.json"
    train.main(
        [
            "--heads", "meanp,seqtransf,camoe",
            "--videos", "16",
            "--captions-per-video", "4",
            "--dim", "32",
            "--batch", "16",
            "--steps", "2",
            "--min-seconds", "0",
            "--repeats", "1",
            "--device", "cpu",
            "--json", str(out),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    for column in ("s/epoch", "pairs/s", "input overhead", "time in take", "/ split size"):
        assert column in printed
    assert "(extrapolated x4)" in printed
    saved = json.loads(out.read_text())
    assert [r["head"] for r in saved["results"]] == ["meanp", "seqtransf", "camoe"]
    split_bytes = 16 * 12 * 32 * 2 + 16 * 12 + 64 * 32 * 32 * 2 + 3 * 64 * 32 + 64 * 8
    assert saved["setup"]["split_bytes"] == split_bytes
    for r in saved["results"]:
        assert r["steps"] == 2 and r["full_epoch_steps"] == 4
        assert r["epoch_s"] == pytest.approx(r["s_per_step"] * 4)
        assert r["footprint_ratio"] == pytest.approx(r["footprint"] / split_bytes)


def test_eval_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("eval")
    out = tmp_path / "eval.json"
    bench.main(["--sizes", "100,300", "--chunk", "32", "--bank", "50", "--device", "cpu", "--json", str(out)])
    printed = capsys.readouterr().out
    for column in ("peak / dense", "peak / (chunk x gallery x 8 B)", "dense fp32 matrix (MiB)"):
        assert column in printed
    saved = json.loads(out.read_text())
    assert [(r["n_queries"], r["post"]) for r in saved["results"]] == [
        (n, p) for n in (100, 300) for p in ("raw", "dsl", "qbnorm")
    ]
    for r in saved["results"]:
        assert r["dense_fp32_bytes"] == r["n_queries"] * r["n_gallery"] * 4
        assert 0.0 <= r["t2v_R@1"] <= 100.0


def test_train_benchmark_runs_cheap_heads_longer(capsys: pytest.CaptureFixture[str]) -> None:
    train = load("train")
    argv = ["--heads", "meanp", "--videos", "16", "--captions-per-video", "4", "--dim", "32", "--batch", "16"]
    payload = train.main([*argv, "--steps", "1", "--min-seconds", "1e6", "--repeats", "1", "--device", "cpu"])
    (r,) = payload["results"]
    # A minimum time no epoch can fill: the whole epoch (64 // 16 steps) is run and said to be measured.
    assert r["steps"] == r["full_epoch_steps"] == 4 and not r["extrapolated"]
    assert "(measured)" in capsys.readouterr().out


def test_scale_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("scale")
    out = tmp_path / "scale.json"
    argv = ["--sizes", "200,400", "--dim", "16", "--frames", "4", "--words", "6", "--steps", "1"]
    argv += ["--batch", "8", "--chunk", "400", "--in-process", "--workdir", str(tmp_path / "w")]
    bench.main([*argv, "--json", str(out)])
    printed = capsys.readouterr().out
    columns = ("cache on disk (GiB)", "train s / 1k captions", "peak RSS / split (load + fit)")
    for column in (*columns, "eval s (raw)"):
        assert column in printed
    saved = json.loads(out.read_text())
    assert [(r["n_captions"], r["head"]) for r in saved["results"]] == [
        (n, h) for n in (200, 400) for h in ("meanp", "xpool")
    ]
    for r in saved["results"]:
        assert r["n_videos"] == r["n_captions"] // 20 and r["eval_gallery"] == max(1, r["n_videos"] // 10)
        assert r["eval_queries"] == 20 * r["eval_gallery"] and r["cache_bytes"] > r["split_bytes"] > 0
    assert not list((tmp_path / "w").glob("*.h5"))  # caches deleted after measuring


def test_eval_floor_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("eval")
    out = tmp_path / "floor.json"
    argv = ["--floor", "--pairwise", "xpool,wti", "--pass-sizes", "16,32", "--dim", "16", "--frames", "4"]
    bench.main([*argv, "--words", "5", "--block", "8", "8", "--extrapolate", "64", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "pass / floor" in printed and "previous / now" in printed
    saved = json.loads(out.read_text())["results"]
    rows = [r for r in saved if "fit" not in r]
    assert [(r["head"], r["n"]) for r in rows] == [(h, n) for h in ("xpool", "wti") for n in (16, 32)]
    for r in rows:
        assert r["macs_per_pair"] == (5 * 4 * 16 if r["head"] == "wti" else 2 * 4 * 16)
        assert r["floor_s"] == pytest.approx(r["n"] ** 2 * r["macs_per_pair"] / (r["matmul_gmacs"] * 1e9))
        assert r["pass_over_floor"] == pytest.approx(r["pass_s"] / r["floor_s"])
        assert (r["legacy_pass_s"] is not None) == (r["n"] == 16)
    fits = [r["fit"] for r in saved if "fit" in r]
    for f in fits:
        mine = [r for r in rows if r["head"] == f["head"]]
        assert f["extrapolated_s"] == pytest.approx(f["c"] * 64**2)
        assert min(r["pass_s"] for r in mine) <= f["c"] * 32**2 * 4  # the fit is of these passes


def test_threads_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("threads")
    out = tmp_path / "threads.json"
    argv = ["--rounds", "1", "--steps", "1", "--batch", "8", "--videos", "4", "--eval-n", "8", "--dim", "16"]
    bench.main([*argv, "--tasks", "train meanp,eval xpool", "--json", str(out)])
    assert "÷ 1 thread(s)" in capsys.readouterr().out
    saved = json.loads(out.read_text())["results"]
    assert [(r["task"], r["threads"]) for r in saved] == [
        (t, n) for t in ("train meanp", "eval xpool") for n in (1, 2)
    ]
    for r in saved:
        one = next(x for x in saved if x["task"] == r["task"] and x["threads"] == 1)
        assert r["vs_one_thread"] == pytest.approx(r["median_s"] / one["median_s"])


def test_log_gaps_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("log_gaps")
    files = tmp_path / "files"
    files.mkdir()
    (files / "private.json").write_text("{}")
    (files / "private.json").chmod(0o600)
    (files / "shared.json").write_text("{}")
    (files / "shared.json").chmod(0o644)
    script = "print('[train] 0/2 steps'); print('│ +10.2 [+5.5, … │'); print('[train] 2/2 steps')"
    out = tmp_path / "gaps.json"
    code = bench.main(["--files", str(files), "--json", str(out), "--", sys.executable, "-c", script])
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert code == 0 and saved["exit_code"] == 0
    assert (saved["lines"], saved["progress_lines"], len(saved["cut_cells"])) == (3, 2, 1)
    assert saved["modes"]["no_group_read"] == ["private.json"]
    assert saved["modes"]["other_mode"] == {"private.json": "0o600"}
    rows = {
        r.split("|")[1].strip(): r.split("|")[2].strip() for r in printed.splitlines() if r.startswith("| ")
    }
    assert rows["progress lines"] == "2" and rows["files without group read"] == "1"
    assert rows["table rows with a cut cell (…)"] == "1"


def test_comparison_cost_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("comparison_cost")
    out = tmp_path / "cost.json"
    argv = ["--small", "--heads", "meanp,wti,seqlstm", "--project-heads", "meanp,wti", "--captions", "3600"]
    payload = bench.main([*argv, "--trials", "2", "--epochs", "3", "--seeds", "1", "--json", str(out)])
    printed = capsys.readouterr().out
    for column in ("step / floor", "step / counted", "ops/step (GPU proxy)", "launch h @ 5 us", "PROJECTION"):
        assert column in printed
    saved = json.loads(out.read_text())
    assert saved["projection"] == json.loads(json.dumps(payload["projection"]))
    rows = {r["head"]: r for r in saved["results"]}
    assert list(rows) == ["meanp", "wti", "seqlstm"]
    for r in rows.values():
        assert r["batch"] == 16 and r["fwd_flops"] > 0 and 0 < r["ops_per_step"] < r["dispatched_per_step"]
        assert r["syncs_per_step"] >= 1  # loss.item() at least
        assert r["floor_s"] == pytest.approx(3 * r["fwd_flops"] / r["matmul_flops_per_s"])
        # per round: the step in units of that round's floor (step x the probe's speed after it)
        work = [t * v for t, v in zip(r["s_per_step_all"], r["matmul_speeds"], strict=True)]
        assert r["step_flops_at_probe_speed"] == pytest.approx(work)
        assert r["step_over_floor"] == pytest.approx(statistics.median(work) / (3 * r["fwd_flops"]))
        assert r["step_over_counted"] == pytest.approx(statistics.median(work) / r["fwd_bwd_flops"])
        assert r["s_per_1k_captions"] == pytest.approx(r["s_per_step"] / 16 * 1000)
        opt = r["optimizer_ops"]
        swapped = r["ops_per_step"] - opt["adamw_single"] - opt["clip_single"] + opt["adamw_foreach"]
        assert r["ops_per_step_gpu_proxy"] == swapped + opt["clip_foreach"]
    # The LSTM is hand-counted (the counter does not see mkldnn_rnn_layer): 2 T B 4H (D + H); then the
    # text adapter (2 B D D), the logits (2 B B D) and the frame pooling (2 B T D), D = H = 32, T = 4.
    lstm = 2 * 4 * 16 * 4 * 32 * (32 + 32)
    assert rows["seqlstm"]["fwd_flops"] == lstm + 2 * 16 * 32 * 32 + 2 * 16 * 16 * 32 + 2 * 16 * 4 * 32
    # Projection = measured figures x the stated comparison: (2 trials + 1 seed) x 3 epochs x 3,600
    # captions x 2 losses per head; the 'after' row at a quarter of a trial.
    before, after = saved["projection"]["before"], saved["projection"]["after"]
    measured = saved["projection"]["multi_fidelity"]  # at benchmarks/fidelity.py's measured ratio
    losses = saved["losses"]
    for p, fraction in ((before, 1.0), (after, 0.25), (measured, bench.MEASURED_FRACTION)):
        assert p["trial_fraction"] == fraction
        seen = (2 * fraction + 1) * 3 * 3600 * 2
        for h in p["per_head"]:
            r = rows[h["head"]]
            assert h["caption_epochs"] == pytest.approx(seen) and h["steps"] == pytest.approx(seen / 16)
            assert h["cpu_thread_hours"] == pytest.approx(seen * r["s_per_step"] / 16 / 3600)
            assert h["gpu_hours"]["bf16"] == pytest.approx(
                seen / 16 * 3 * r["fwd_flops"] / (0.3 * 989e12) / 3600
            )
            ops = sum(r["ops_per_step_gpu_proxy"] - losses["dsl"]["ops"] + losses[k]["ops"] for k in losses)
            assert h["launch_hours"] == pytest.approx(seen / 16 / 2 * ops * 5e-6 / 3600)
        assert p["total"]["cpu_thread_hours"] == pytest.approx(
            sum(h["cpu_thread_hours"] for h in p["per_head"])
        )
    assert after["total"]["cpu_thread_hours"] < before["total"]["cpu_thread_hours"]


def test_comparison_cost_projects_the_issues_arithmetic() -> None:
    """project() alone, on stated per-step figures: 1 s per 1,000 captions over 3.6 M caption-epochs is
    one thread-hour; 1e12 forward FLOPs a step at 30 % of 1 PFLOP/s; 100 operators a step at 5 us."""
    bench = load("comparison_cost")
    args = bench.parse_args(["--project-heads", "meanp", "--heads", "meanp", "--losses", "infonce"])
    args.trials, args.seeds, args.epochs, args.captions = 0, 1, 1, 3_600_000
    args.peaks, args.gpu_fraction = [("x", 1000.0)], 0.3
    row = {
        "head": "meanp",
        "batch": 100,
        "s_per_1k_captions": 1.0,
        "fwd_flops": 1e12,
        "ops_per_step_gpu_proxy": 100,
    }
    losses = {"dsl": {"ops": 40}, "infonce": {"ops": 15}}
    got = bench.project([row], losses, args, 1.0)["total"]
    assert got["cpu_thread_hours"] == pytest.approx(1.0)
    assert got["gpu_hours"]["x"] == pytest.approx(36_000 * 3e12 / 0.3e15 / 3600)
    assert got["launch_hours"] == pytest.approx(36_000 * (100 - 40 + 15) * 5e-6 / 3600)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--heads", "meanp,nope"], "--heads: unknown nope"),
        (
            ["--heads", "meanp", "--project-heads", "xpool"],
            "--project-heads: unknown xpool (measured, --heads: meanp)",
        ),
        (["--losses", "infonce,hinge"], "--losses: unknown hinge"),
        (["--loss", "nope"], "--loss: unknown nope"),
        (["--heads", ","], "--heads: give at least one name"),
        (["--trials", "-1"], "--trials must be >= 0"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--trials", "0", "--seeds", "0"], "trains nothing"),
        (["--captions", "0"], "--captions must be >= 1"),
        (["--trial-fraction", "0"], "--trial-fraction must be in (0, 1]"),
        (["--trial-fraction", "1.5"], "--trial-fraction must be in (0, 1]"),
        (["--trial-fraction", "nan"], "--trial-fraction must be in (0, 1]"),
        (["--gpu-fraction", "0"], "--gpu-fraction must be in (0, 1]"),
        (["--gpu-peaks", "bf16"], "is not NAME=TFLOPS"),
        (["--gpu-peaks", "bf16=-3"], "is not NAME=TFLOPS"),
        (["--gpu-peaks", "=989"], "is not NAME=TFLOPS"),
        (["--gpu-peaks", "bf16=inf"], "is not NAME=TFLOPS"),
        (["--gpu-peaks", ","], "give at least one NAME=TFLOPS"),
        (["--launch-us", "-1"], "--launch-us must be >= 0"),
        (["--min-seconds", "inf"], "--min-seconds must be >= 0 and finite"),
        (["--words", "1"], "--words must be >= 2"),
        (
            ["--vs", "HEAD", "--vs-heads", "xpool", "--heads", "meanp", "--project-heads", "meanp"],
            "--vs-heads: unknown xpool",
        ),
    ],
)
def test_comparison_cost_refuses_bad_options(argv: list[str], message: str, capsys) -> None:
    bench = load("comparison_cost")
    with pytest.raises(SystemExit) as caught:
        bench.parse_args(argv)
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_comparison_cost_refuses_a_revision_it_cannot_read() -> None:
    bench = load("comparison_cost")
    with pytest.raises(SystemExit, match="--vs no-such-rev-x: cannot read vtrbench/heads/_layers.py"):
        bench.head_class_at("no-such-rev-x", "wti")


def test_comparison_cost_loads_a_head_as_it_was_at_a_revision() -> None:
    """--vs REV: wti and its shared head modules as at the commit before issue 29, beside today's (nothing
    registered, today's modules back in place), the same function as today's in float64."""
    import subprocess

    import torch

    from vtrbench.factory import create_head
    from vtrbench.heads import _layers
    from vtrbench.heads.base import HEADS

    rev = "796ce55"  # the last commit before wti was packed
    root = Path(__file__).resolve().parents[2]
    known = subprocess.run(["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=root, capture_output=True)
    if known.returncode != 0:
        pytest.skip(f"git history without {rev} (shallow clone?)")
    bench = load("comparison_cost")
    today = HEADS.get("wti")
    old_class = bench.head_class_at(rev, "wti")
    assert old_class is not today and HEADS.get("wti") is today
    assert sys.modules["vtrbench.heads._layers"] is _layers
    torch.manual_seed(0)
    head = create_head("wti", embed_dim=16).double()
    old = old_class(embed_dim=16).double()
    old.load_state_dict(head.state_dict())
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.2)
        old.load_state_dict(head.state_dict())
    token_mask = torch.arange(9)[None] <= torch.tensor([3, 8, 5, 1])[:, None]
    frame_mask = torch.arange(5)[None] < torch.tensor([5, 2, 4, 3])[:, None]
    text = {"tokens": torch.randn(4, 9, 16, generator=g, dtype=torch.float64), "token_mask": token_mask}
    video = {"frames": torch.randn(4, 5, 16, generator=g, dtype=torch.float64), "frame_mask": frame_mask}
    text["eot"] = token_mask.sum(1) - 1
    with torch.no_grad():
        torch.testing.assert_close(head.score(text, video), old.score(text, video), rtol=1e-12, atol=1e-12)


def test_comparison_cost_pairs_today_with_a_revision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    rev = "796ce55"
    root = Path(__file__).resolve().parents[2]
    known = subprocess.run(["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=root, capture_output=True)
    if known.returncode != 0:
        pytest.skip(f"git history without {rev} (shallow clone?)")
    bench = load("comparison_cost")
    out = tmp_path / "vs.json"
    argv = ["--small", "--heads", "meanp,wti", "--project-heads", "wti", "--vs", rev, "--repeats", "2"]
    bench.main([*argv, "--json", str(out)])
    assert f"Before ({rev}) and after (this tree)" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    rows = {r["head"]: r for r in saved["results"]}
    assert list(rows) == ["meanp", "wti", f"wti@{rev}", f"meanp@{rev}"]
    for pair in saved["vs"]:
        now, old = rows[pair["head"]], rows[f"{pair['head']}@{rev}"]
        pairs = zip(old["step_flops_at_probe_speed"], now["step_flops_at_probe_speed"], strict=True)
        ratios = [o / n for o, n in pairs]
        assert pair["before_over_after_load_normalised"] == pytest.approx(statistics.median(ratios))
        assert pair["before_over_after"] == pytest.approx(old["s_per_step"] / now["s_per_step"])
    wti = next(p for p in saved["vs"] if p["head"] == "wti")
    assert wti["before_fwd_flops"] > wti["after_fwd_flops"]  # padded tokens no longer multiplied


def test_fidelity_benchmark_statistics() -> None:
    """Spearman over cells with average ranks for ties, gaps and the caption-epoch ratio."""
    bench = load("fidelity")
    # no ties: 1 - 6 sum d^2 / (n (n^2 - 1)) with d = (0, 1, 1, 0)
    assert bench.spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(1 - 6 * 2 / (4 * 15))
    # a tie: ranks (1.5, 1.5, 3) against (1, 2, 3): covariance 1.5, variances 1.5 and 2
    assert bench.spearman([5, 5, 7], [1, 2, 3]) == pytest.approx(1.5 / (1.5 * 2) ** 0.5)
    assert bench.spearman([1, 1, 1], [1, 2, 3]) is None
    full = {"a": {"best": 3.0, "caption_epochs": 100}, "b": {"best": 1.0, "caption_epochs": 60},
            "c": {"best": None, "caption_epochs": 40}}  # fmt: skip
    multi = {"a": {"best": 2.0, "caption_epochs": 30}, "b": {"best": 1.5, "caption_epochs": 20},
             "c": {"best": 4.0, "caption_epochs": 50}}  # fmt: skip
    got = bench.compare(full, multi)
    assert got["cells"] == ["a", "b"] and got["gaps"] == {"a": -1.0, "b": 0.5}
    assert got["spearman"] == pytest.approx(1.0)
    assert got["caption_epochs"] == {"full": 200, "multi": 100} and got["ratio"] == pytest.approx(0.5)
    # the noise floor: full fidelity of the first seed against the other seeds' (here: one other)
    runs = [{"videos": 8, "stats": {"full": full}}, {"videos": 8, "stats": {"full": multi}}]
    noise = bench.seed_noise(runs)
    assert noise == {8: {"spearman": pytest.approx(1.0), "gap_mean_abs": pytest.approx(0.75)}}


@pytest.mark.slow
def test_compile_step_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # compiles meanp once (tens of seconds with a cold inductor cache)
    bench = load("compile_step")
    out = tmp_path / "compile.json"
    sizes = ["--batch", "8", "--dim", "16", "--frames", "4", "--words", "6"]
    rounds = ["--steps", "2", "--rounds", "3", "--warmup", "1"]
    bench.main(["--device", "cpu", "--heads", "meanp", *sizes, *rounds, "--json", str(out)])
    printed = capsys.readouterr().out
    for column in ("eager s/step", "default s/step", "eager / compiled", "compile s"):
        assert column in printed
    (row,) = json.loads(out.read_text())["rows"]
    assert row["head"] == "meanp" and row["kernels/step"].startswith("not measured")  # a CPU has no launches
    # the ratio is of the unrounded medians, the s/step columns are rounded to 10 µs
    assert row["eager / compiled"] == pytest.approx(row["eager s/step"] / row["default s/step"], rel=0.05)


def test_ucofia_cost_benchmarks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "block.json"
    small = ["--dim", "16", "--frames", "4", "--words", "5", "--patches", "6"]
    load("ucofia_block").main([*small, "--block", "3", "4", "--repeats", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert set(saved["median_s"]) == {"chunked", "whole block", "chunked, flush-to-zero", "floor"}
    for name, seconds in saved["median_s"].items():
        assert saved["over_floor"][name] == pytest.approx(seconds / saved["median_s"]["floor"])
        assert f"| {name} " in printed
    assert saved["max_abs_diff"] < 1e-5 and sum(saved["profile"].values()) == pytest.approx(1.0)
    floor = tmp_path / "floor.json"
    load("eval").main(["--floor", "--pairwise", "ucofia", "--pass-sizes", "8", *small, "--block", "4", "4",
                       "--json", str(floor)])  # fmt: skip
    (row,) = [r for r in json.loads(floor.read_text())["results"] if "fit" not in r]
    assert row["legacy_pass_s"] is not None and row["speedup_vs_legacy"] == pytest.approx(
        row["legacy_pass_s"] / row["pass_s"]
    )


def test_tmass_ops_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ops.json"
    load("tmass_ops").main(
        ["--captions", "3", "--videos", "4", "--dim", "8", "--repeats", "2", "--json", str(out)]
    )
    printed = capsys.readouterr().out
    assert "exp / exp2" in printed and "bmm / vecdot" in printed
    saved = json.loads(out.read_text())
    med = saved["median_s"]
    assert saved["ratios"]["exp / exp2"] == pytest.approx(med["exp"] / med["exp2(x log2 e)"])
    assert saved["ratios"]["bmm / vecdot"] == pytest.approx(med["t.o by bmm"] / med["t.o by vecdot"])
    # the two ways compute the same values (float32 rounding apart)
    assert saved["max_rel_diff"]["exp"] < 1e-5 and saved["max_rel_diff"]["t.o"] < 1e-5
