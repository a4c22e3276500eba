"""The decomposition's sentence is a test with a stated error rate (issue 27 item 1).

Four simulated worlds with a known answer (benchmarks/decomposition_sim.py: only the loss helps,
only the inference helps, both add, they interact), 200 repetitions each, through the report's own
decision (joint bootstrap over seeds and queries, Holm over the six contrasts, the written rule):
the share of sentences that attribute the gain falsely stays at or below the stated family-wise
level (5 %), and the rule is not vacuous: it reaches each world's own verdict in a fair share of the
repetitions (a rule that always said "cannot tell" would fail here). README, "Where does DSL's gain
come from?", quotes the rates (``python -m benchmarks.decomposition_sim``).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.decomposition_sim import FALSE, OWN, WORLDS, draw_cells, simulate
from vtrbench import defaults
from vtrbench.report.decomposition import CELLS, CONTRASTS, decide, verdict
from vtrbench.report.stats import Effect, holm_intervals, joint_replicates

REPS = 200


@pytest.mark.parametrize("world", ["loss only", "inference only", "both additive", "interaction"])
def test_false_attribution_stays_within_the_stated_level(world: str) -> None:
    verdicts, _ = simulate(world, reps=REPS)
    assert sum(verdicts.values()) == REPS
    false = sum(n for v, n in verdicts.items() if v in FALSE[world]) / REPS
    assert false <= defaults.SIGNIFICANCE, (world, dict(verdicts))
    # not vacuous: a rule that never attributed would pass the line above; this one reaches the world's
    # own verdict in 28 % to 51 % of the repetitions (README), required here in at least 10 %
    assert verdicts[OWN[world]] / REPS >= 0.10, (world, dict(verdicts))


def _effects(significant: dict[str, float]) -> dict[str, Effect]:
    """Contrasts with the given significant estimates (the others 0 and not significant)."""
    out = {}
    for key in CONTRASTS:
        est = significant.get(key, 0.0)
        out[key] = Effect(
            est, est - 1, est + 1, 0.05, 0.001 if est else 1.0, 0.001 if est else 1.0, bool(est)
        )
    return out


def test_the_rule_needs_the_rejections_it_names() -> None:
    # each branch of the rule, and none from a non-significant effect
    assert verdict(_effects({"interaction": 3.0, "loss@raw": 5.0, "loss-vs-inference": 5.0})) == "interaction"
    assert verdict(_effects({"loss@raw": 5.0, "loss-vs-inference": 4.0})) == "loss"
    assert verdict(_effects({"loss@raw": 5.0})) == "cannot tell"  # larger, but not shown larger
    assert verdict(_effects({"inference@ref": 5.0, "loss-vs-inference": -4.0})) == "inference"
    assert verdict(_effects({"inference@ref": 5.0, "loss-vs-inference": 4.0})) == "cannot tell"
    assert verdict(_effects({"inference@ref": 5.0, "loss@raw": 4.0})) == "both"
    assert (
        verdict(_effects({"loss@raw": -5.0, "loss-vs-inference": -4.0})) == "cannot tell"
    )  # a loss of recall
    # MnR: a gain is a lower rank
    assert verdict(_effects({"loss@raw": -5.0, "loss-vs-inference": -4.0}), higher=False) == "loss"
    assert verdict(_effects({})) == "cannot tell"


def test_joint_replicates_follow_the_documented_procedure() -> None:
    rng = np.random.default_rng(3)
    cells = [rng.normal(size=(s, 9)) for s in (3, 2, 3, 2)]
    runs = (0, 1, 0, 1)
    means, reps = joint_replicates(cells, runs, n_boot=70, seed=11)
    assert np.allclose(means, [c.mean() for c in cells])
    # the docstring's loop, draw by draw: chunks of 64; per chunk each group's seeds, then the queries
    draw = np.random.default_rng(11)
    want = np.empty((4, 70))
    for start in range(0, 70, 64):
        m = min(64, 70 - start)
        seeds = {0: draw.integers(0, 3, size=(m, 3)), 1: draw.integers(0, 2, size=(m, 2))}
        q = draw.integers(0, 9, size=(m, 9))
        for r in range(m):
            for c, (a, g) in enumerate(zip(cells, runs, strict=True)):
                want[c, start + r] = a[seeds[g][r]][:, q[r]].mean()
    assert np.allclose(reps, want)
    # the queries bootstrap averages seeds first and draws only queries
    _, qreps = joint_replicates(cells, runs, n_boot=5, seed=2, bootstrap="queries")
    draw = np.random.default_rng(2)
    q = draw.integers(0, 9, size=(5, 9))
    assert np.allclose(qreps, [[c.mean(0)[q[r]].mean() for r in range(5)] for c in cells])


def test_holm_intervals_agree_with_a_step_down_loop() -> None:
    rng = np.random.default_rng(0)
    for trial in range(30):
        m, n = int(rng.integers(2, 8)), int(rng.integers(50, 400))
        shift = rng.choice([0.0, 0.05, 0.2, 1.0], size=m)[:, None]
        reps = rng.normal(size=(m, n)) * 0.1 + shift
        got = holm_intervals(reps.mean(1), reps, 0.05)
        # the definition, written out
        c = np.minimum((reps <= 1e-9).sum(1), (reps >= -1e-9).sum(1))
        p = np.minimum(1.0, 2 * (c + 1) / (n + 1))
        rejected, alive = set(), True
        for k, i in enumerate(np.argsort(p, kind="stable")):
            alive = alive and p[i] <= 0.05 / (m - k)
            if alive:
                rejected.add(int(i))
        for i, t in enumerate(got):
            assert t.p == pytest.approx(p[i]) and t.significant == (i in rejected), trial
            assert (t.lo > 1e-9 or t.hi < -1e-9) == t.significant, trial  # the interval agrees
            assert t.p_holm <= 0.05 if t.significant else t.p_holm > 0.05


def test_too_few_replicates_cannot_be_significant() -> None:
    # 20 replicates cannot reach 0.05 / 6 with the add-one p: nothing is significant, intervals say so
    rng = np.random.default_rng(1)
    cells = {key: rng.normal(size=(3, 40)) + (5.0 if key == "tgt_post" else 0.0) for key in CELLS}
    v, effects = decide(cells, n_boot=20)
    assert v == "cannot tell" and not any(t.significant for t in effects.values())
    assert any(not np.isfinite(t.lo) for t in effects.values())
    v, effects = decide(cells, n_boot=1000)
    assert v == "interaction"  # only the two together help, clearly


def test_worlds_are_what_they_say() -> None:
    # the simulated cells have the means the worlds state (the truth the false rates are judged by)
    rng = np.random.default_rng(9)
    for world, units in WORLDS.items():
        cells = draw_cells(rng, tuple(0.45 + 0.12 * k for k in units), queries=4000, seeds=3, sd_run=0.0)
        got = [cells[c].mean() / 100 for c in ("ref_raw", "tgt_raw", "ref_post", "tgt_post")]
        assert np.allclose(got, [0.45 + 0.12 * k for k in units], atol=0.03), world
