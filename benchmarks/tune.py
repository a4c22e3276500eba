"""Default recipe vs equal-budget tuned, and what pruning buys, on the synthetic demo cache.

In one run, on one cache (the demo's: 256 synthetic videos, vtrbench-tiny with random weights;
made if missing, as ``vtrbench demo`` makes it):

1. **default recipe**: ``vtrbench ablate`` of every (head, loss) with the project's default recipe
   (CLIP4Clip's: lr 1e-4, 5 epochs, batch 128), which is far from right for heads trained from
   scratch on frozen features, over ``--seeds``;
2. **tuned**: ``vtrbench tune`` with the same budget for every cell (``--trials``, ``--max-epochs``,
   validation = 10 % of the train videos, median pruner), then ``vtrbench ablate --tuned`` of each
   cell's best configuration over the same seeds, on the test split;
3. the report table of both (t2v R@1 and RSum, raw similarity, mean ± std over seeds);
4. **pruning**: the same tuning with ``--pruner none`` in a second study: trials per hour, epochs
   trained and the best validation objective with and without pruning (same cells, same seed);
   ``--skip-pruning`` leaves it out;
5. **validation vs test** (``--folds K``: K video-disjoint folds instead of the 10 % hold-out): each
   cell's best validation objective with its fold spread beside the same objective on test, Spearman's
   rho of the cells between the two, and, with ``--tune-seeds 0,1``, the same tuning with a second seed
   (its own study and ``ablate --tuned`` results): how far the tuned ranking of the cells agrees.

Heads that read patch tokens (``requires``: ucofia) get the demo cache extracted with them
(``--patch-tokens``), and then every cell runs on it: its frame and caption features are the same
bits as the plain demo cache's (tests/runs/test_patch_token_cache.py), so the other cells' numbers
do not move. ``HEAD+emcl`` (e.g. ``meanp+emcl``) is HEAD with EMCL's training module (head option
``emcl=true``): ``vtrbench tune`` has no per-cell head option, so these cells get studies of their own
(``tune-<pruner>-emcl.db``) whose ``--space`` fixes the option (``emcl = {choices = [true]}``), with
the same trials, epochs, folds and seeds; ``ablate`` gives them ``--head-option emcl=true``.

Run: ``python benchmarks/tune.py --out /tmp/vtrbench-tune`` (see benchmarks/README.md); ``--json``
saves the raw numbers. Wall times are from a shared, loaded machine: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def _cli(*argv: Any) -> None:
    from vtrbench.cli import main

    code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"vtrbench {argv[0]} failed (exit {code})")


def study_stats(study: Path) -> dict[str, Any]:
    """Per cell: finished trials, pruned, epochs and caption-epochs trained, best objective (from the
    SQLite study)."""
    from vtrbench.runs.tune.storage import import_optuna, open_storage, vtrbench_studies

    optuna = import_optuna()
    storage = open_storage(f"sqlite:///{study}")
    out = {}
    for name in vtrbench_studies(storage):
        s = optuna.load_study(study_name=name, storage=storage)
        trials = [t for t in s.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
        done = [t for t in trials if t.state.name == "COMPLETE"]
        out[name.split(":", 1)[1]] = {
            "finished": len(trials),
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "epochs": sum(int(t.user_attrs.get("epochs_run", 0)) for t in trials),
            "caption_epochs": sum(int(t.user_attrs.get("caption_epochs", 0)) for t in trials),
            "best": max((t.value for t in done), default=None),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="working folder (cache, studies, results)")
    p.add_argument("--cache", type=Path, help="an existing cache [default: make the demo's in --out]")
    p.add_argument("--videos", type=int, default=256)
    p.add_argument("--heads", default="meanp,seqtransf,camoe")
    p.add_argument("--losses", default="infonce,dsl")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--folds", type=int, help="tune --folds K [default: the 10 %% hold-out]")
    p.add_argument("--tune-seeds", default="0", help="tuning seeds (a study and tuned results each)")
    p.add_argument("--skip-pruning", action="store_true", help="leave out the --pruner none study")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    info = _common.machine_info("cpu")
    _common.print_machine(info)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    groups = head_groups(heads)
    cache = args.cache
    if cache is None:
        from vtrbench.demo import make_synthetic_cache

        patches = _common.needs_patch_tokens(heads)
        cache, _ = make_synthetic_cache(out, videos=args.videos, workers=0, patch_tokens=patches)
    results = out / "results"
    common = ("--cache", cache, "--device", "cpu", "--quiet", "--results", results)
    for _tag, group, options in groups:
        _cli(
            "ablate", *common, "--heads", ",".join(group), "--losses", args.losses, "--seeds", args.seeds,
            *_option_flags(options),
        )  # fmt: skip

    timings: dict[str, float] = {}
    stats: dict[str, Any] = {}
    validation = ("--folds", args.folds) if args.folds else ("--val-fraction", 0.1)
    tune_seeds = [int(x) for x in args.tune_seeds.split(",")]
    runs = [("median", s) for s in tune_seeds] + ([] if args.skip_pruning else [("none", tune_seeds[0])])
    for pruner, tseed in runs:
        name = pruner if tseed == tune_seeds[0] else f"{pruner}-s{tseed}"
        timings[name], stats[name] = 0.0, {}
        for tag, group, options in groups:
            study = out / f"tune-{name}{'-' + tag if tag else ''}.db"
            t0 = time.perf_counter()
            _cli(
                "tune", "--cache", cache, "--heads", ",".join(group), "--losses", args.losses,
                "--trials", args.trials, "--max-epochs", args.max_epochs, *validation,
                "--study", study, "--pruner", pruner, "--seed", tseed, "--device", "cpu", "--quiet",
                *_space_flags(out, tag, group, options),
            )  # fmt: skip
            timings[name] += time.perf_counter() - t0  # tuning only, not ablate --tuned
            stats[name].update({variant_cell(cell, tag): v for cell, v in study_stats(study).items()})
            if pruner == "median":  # the first seed's tuned rows go beside the default recipe's
                where = results if tseed == tune_seeds[0] else out / f"results-s{tseed}"
                _cli("ablate", *common[:-1], where, "--tuned", study, "--seeds", args.seeds)

    from vtrbench.report import build_report, load_results, render_markdown

    report = build_report(load_results([results / "synthetic"]), posts=("raw",), columns=("t2v/R@1", "RSum"))
    table = render_markdown(report)
    print(table)

    val_test = _val_test(out, results, tune_seeds)
    if not args.skip_pruning:
        _pruning_table(args, stats, timings)
    payload = {
        "machine": info,
        "timings_s": timings,
        "studies": stats,
        "report": table,
        "val_test": val_test,
        "args": vars(args),
    }
    _common.write_json(args.json, json.loads(json.dumps(payload, default=str)))
    return payload


def head_groups(heads: list[str]) -> list[tuple[str, list[str], dict[str, Any]]]:
    """``--heads`` split into (variant tag, its base heads, their head options): plain heads first
    (tag ""), then one group per variant (``meanp+emcl,seqtransf+emcl`` -> ("emcl", [meanp, seqtransf],
    {emcl: True})), each tuned in studies of its own."""
    groups: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for h in heads:
        base, tag, options = _common.head_variant(h)
        groups.setdefault(tag, ([], options))[0].append(base)
    return [(tag, g, o) for tag, (g, o) in sorted(groups.items(), key=lambda kv: kv[0] != "")]


def variant_cell(cell: str, tag: str) -> str:
    """A variant group's cell as the report labels its head: ``meanp+infonce``, emcl ->
    ``meanp[emcl]+infonce`` (the plain group's cells unchanged)."""
    head, loss = cell.split("+", 1)
    return f"{head}[{tag}]+{loss}" if tag else cell


def _study_tag(study: str) -> str:
    """The variant tag of a study file this script named (``tune-median-s1-emcl.db`` -> emcl)."""
    stem = Path(study).stem
    return next((t for t in _common.HEAD_VARIANTS if stem.endswith(f"-{t}")), "")


def _text(value: Any) -> str:
    """An option value as ``--head-option`` and TOML spell it (booleans: true/false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _option_flags(options: dict[str, Any]) -> list[str]:
    """``--head-option KEY=VALUE`` for each option."""
    return [f for k, v in options.items() for f in ("--head-option", f"{k}={_text(v)}")]


def _space_flags(out: Path, tag: str, group: list[str], options: dict[str, Any]) -> list[Any]:
    """A variant group's ``--space`` file: its options fixed (one choice) for each of its heads."""
    if not tag:
        return []
    fixed = [f"{k} = {{choices = [{_text(v)}]}}" for k, v in options.items()]
    lines = [line for head in group for line in (f"[head.{head}]", *fixed)]
    space = out / f"space-{tag}.toml"
    space.write_text("\n".join(lines) + "\n")
    return ["--space", space]


def _pruning_table(args: Any, stats: dict[str, Any], timings: dict[str, float]) -> None:
    """Trials, epochs and best validation objective with and without the median pruner."""
    rows = []
    cells = sorted(stats["median"])
    for pruner in ("median", "none"):
        s = stats[pruner]
        n = sum(c["finished"] for c in s.values())
        epochs = sum(c["epochs"] for c in s.values())
        rows.append(
            [
                pruner,
                n,
                sum(c["pruned"] for c in s.values()),
                epochs,
                timings[pruner],
                3600 * n / timings[pruner],
                " / ".join(_common.fmt(s[c]["best"], 4) for c in cells),
            ]
        )
    _common.print_table(
        f"pruning ({args.trials} trials x {len(cells)} cells, epochs <= {args.max_epochs})",
        [
            "pruner",
            "trials",
            "pruned",
            "epochs trained",
            "seconds",
            "trials/hour",
            "best val (" + " / ".join(cells) + ")",
        ],
        rows,
    )
    saved = 1 - rows[0][3] / rows[1][3] if rows[1][3] else None
    speed = _common.ratio(rows[0][5], rows[1][5])
    _common.print_notes(
        [
            f"epochs saved by the median pruner: {_common.fmt(saved)} of those trained without pruning",
            f"trials/hour with pruning / without: {_common.fmt(speed)}",
            "best val: the best validation objective (the study's) per cell; equal values mean pruning "
            "lost nothing at this budget",
        ]
    )


def _val_test(out: Path, results: Path, tune_seeds: list[int]) -> dict[str, Any]:
    """Per tuning seed: each cell's validation (fold spread) beside test, and Spearman's rho; then the
    agreement of the cells' rankings between the first two tuning seeds."""
    from vtrbench.report import load_results
    from vtrbench.runs.tune.valtest import spearman, val_test_rows

    per_seed: dict[int, dict[str, Any]] = {}
    for tseed in tune_seeds:
        where = results if tseed == tune_seeds[0] else out / f"results-s{tseed}"
        rows = val_test_rows(load_results([where]))
        per_seed[tseed] = {variant_cell(r.cell, _study_tag(r.study)): r for r in rows}
        table = [
            [
                cell,
                _common.fmt(r.validation, 4),
                _common.fmt(r.fold_std, 3),
                _common.fmt(r.test, 4),
                r.seeds,
            ]
            for cell, r in per_seed[tseed].items()
        ]
        rho = spearman([r.validation for r in rows], [r.test for r in rows])
        _common.print_table(
            f"validation vs test, tuning seed {tseed} ({rows[0].objective if rows else '?'}; test: raw, "
            f"mean over seeds); Spearman rho of cells = {_common.fmt(rho, 3)}",
            ["cell", "validation", "fold std", "test", "seeds"],
            table,
        )
    out_: dict[str, Any] = {
        str(s): {c: {"val": r.validation, "fold_std": r.fold_std, "test": r.test} for c, r in rows.items()}
        for s, rows in per_seed.items()
    }
    if len(tune_seeds) > 1:
        a, b = per_seed[tune_seeds[0]], per_seed[tune_seeds[1]]
        cells = sorted(set(a) & set(b))
        agree = {
            what: spearman([getattr(a[c], what) for c in cells], [getattr(b[c], what) for c in cells])
            for what in ("validation", "test")
        }
        top = {s: max(per_seed[s], key=lambda c: per_seed[s][c].test) for s in tune_seeds[:2]}
        _common.print_notes(
            [
                f"tuning seeds {tune_seeds[0]} vs {tune_seeds[1]}: Spearman rho of the cells' validation "
                f"objectives {_common.fmt(agree['validation'], 3)}, of their test values "
                f"{_common.fmt(agree['test'], 3)} ({len(cells)} cells); best cell on test: "
                + " vs ".join(top.values())
            ]
        )
        out_["agreement"] = {**agree, "top": top}
    return out_


if __name__ == "__main__":
    main()
