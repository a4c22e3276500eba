"""Which tuning objective is less noisy: validation RSum or t2v R@1 + v2t R@1 (``tune --objective``)?

On the demo cache (made if missing, as ``vtrbench demo`` makes it), ``vtrbench tune --folds K`` runs
random search (``--startup-trials`` = ``--trials``, no pruner: the trials sampled and trained do not
depend on the objective) and every trial records both objectives of each of its K fold models. Per
objective and cell:

* **fold agreement**: the mean Spearman correlation, over pairs of folds, of the configurations'
  ranking by that fold's objective (1: every fold ranks the configurations alike);
* **noise / signal**: the pooled fold-to-fold standard deviation of one configuration divided by
  the standard deviation of the configurations' fold means (smaller: folds disagree less than
  configurations differ);
* **ties**: configurations whose fold mean ties another's (an objective that cannot separate them).

Run: ``python benchmarks/tune_objective.py --out /tmp/vtrbench-objective`` (``--json`` saves the raw
numbers). The machine is shared and loaded: no timing is reported.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def measure(per_config: list[list[float]]) -> dict[str, Any]:
    """per_config[c][f]: one objective of configuration c's fold-f model."""
    k = len(per_config[0])
    from vtrbench.runs.tune.valtest import spearman

    rhos = [
        spearman([c[f] for c in per_config], [c[g] for c in per_config])
        for f, g in itertools.combinations(range(k), 2)
    ]
    valid = [r for r in rhos if r is not None]
    means = [statistics.fmean(c) for c in per_config]
    within = math.sqrt(statistics.fmean([statistics.variance(c) for c in per_config]))
    between = statistics.stdev(means)
    return {
        "fold_agreement": statistics.fmean(valid) if valid else None,
        "noise_signal": within / between if between else None,
        "tied_means": len(means) - len(set(means)),
        "within_std": within,
        "between_std": between,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cache", type=Path, help="an existing cache [default: make the demo's in --out]")
    p.add_argument("--cells", default="meanp+infonce,seqtransf+dsl")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--max-epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    info = _common.machine_info("cpu")
    _common.print_machine(info)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.cache
    if cache is None:
        from vtrbench.demo import make_synthetic_cache

        cache, _ = make_synthetic_cache(args.out, videos=256, workers=0)
    from vtrbench.cli import main as cli_main
    from vtrbench.runs.tune.storage import import_optuna, open_storage

    optuna = import_optuna()
    rows, raw = [], {}
    for cell in args.cells.split(","):
        head, loss = cell.split("+")
        study = args.out / f"objective-{head}-{loss}.db"
        code = cli_main(
            [str(a) for a in (
                "tune", "--cache", cache, "--heads", head, "--losses", loss, "--folds", args.folds,
                "--trials", args.trials, "--startup-trials", args.trials, "--max-epochs", args.max_epochs,
                "--pruner", "none", "--seed", args.seed, "--study", study, "--device", "cpu", "--quiet",
                "--overwrite",
            )]
        )  # fmt: skip
        if code != 0:
            raise SystemExit(f"vtrbench tune failed (exit {code})")
        s = optuna.load_study(study_name=f"vtrbench:{cell}", storage=open_storage(f"sqlite:///{study}"))
        done = [t for t in s.get_trials() if t.state.name == "COMPLETE" and "fold_objectives" in t.user_attrs]
        raw[cell] = [t.user_attrs["fold_objectives"] for t in done]
        for objective in ("rsum", "r1"):
            m = measure([t[objective] for t in raw[cell]])
            raw[cell + ":" + objective] = m
            rows.append(
                [
                    cell,
                    objective,
                    len(done),
                    _common.fmt(m["fold_agreement"], 3),
                    _common.fmt(m["noise_signal"], 3),
                    m["tied_means"],
                    _common.fmt(m["within_std"], 3),
                    _common.fmt(m["between_std"], 3),
                ]
            )
    _common.print_table(
        f"objective noise ({args.folds} folds, {args.trials} random configurations per cell, "
        f"epochs <= {args.max_epochs}, seed {args.seed})",
        ["cell", "objective", "configs", "fold agreement", "noise/signal", "tied", "fold std", "config std"],
        rows,
    )
    payload = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "results": raw}
    _common.write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
