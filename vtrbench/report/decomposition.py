"""The loss x inference decomposition: where does a gain come from, the training loss or the inference?

vtrbench evaluates every trained head with every inference post-processing (``raw``, ``dsl``,
``qbnorm``, ``is-*``, ``csls-*``, ``dsl-bank``, ``sinkhorn``), so results with two training losses
hold a 2-factor table per head: training loss x inference post-processing. This module shows that
table (means, descriptive) and tests one 2 x 2 in it.

METHODS. The 2 x 2 runs from the **reference cell** (the reference loss, ``infonce`` when present,
else the first loss in name order, with ``raw`` inference) to the **target cell**, fixed before
looking at the numbers: the DSL-trained, DSL-inferred cell (``defaults.DECOMPOSITION_TARGET``, CAMoE's
setting; a loss ``dsl`` also matches one variant ``dsl[...]``), or the cell the user names
(``decomposition_target="LOSS:POST"``, ``--decomposition-target`` on the command line). Where the
default target is missing, the target is the best mean among the cells that change both factors,
chosen after looking, and the report says so (its tests then do not account for the choice).

With RR, TR, RP, TP the cells (reference or target loss) x (raw or target post-processing), the
family of six contrasts per head is:

- loss effect at raw inference TR - RR, loss effect at the target inference TP - RP;
- inference effect at the reference loss RP - RR, inference effect at the target loss TP - TR;
- the interaction TP - TR - RP + RR;
- loss alone vs inference alone TR - RP (= the loss's main effect minus the inference's).

Each is the difference of per-query expected recall@K (expected rank for MnR) from the stored tie
counts, the quantity the report's columns average; replicates come from one joint bootstrap of the
four cells (:func:`~vtrbench.report.stats.joint_replicates`): each training's seeds are drawn once
per replicate and shared by its two post-processings (they are the same trained heads), the two
trainings independently, the queries once and shared by all four (``--bootstrap queries``: seeds
averaged first, queries only). Holm's step-down procedure runs over **every contrast the section
shows** (six per head, all heads together) at family-wise level ``defaults.SIGNIFICANCE`` (5 %),
with add-one bootstrap p-values and intervals at each contrast's Holm step level
(:func:`~vtrbench.report.stats.holm_intervals`: an interval excludes 0 exactly when Holm rejects).

DECISION RULE (one sentence per head; "significant" = rejected by Holm, "a gain" = up for recall,
down for MnR):

1. **interaction** when the interaction is significant: the loss's effect depends on the inference
   (read the simple effects, not one factor's share);
2. else **the training loss carries the gain** when the loss effect at raw inference is a
   significant gain *and* loss-alone minus inference-alone is a significant gain (the inference's
   effect is significantly smaller);
3. else **the inference carries the gain** when the inference effect at the reference loss is a
   significant gain *and* loss-alone minus inference-alone is a significant loss of recall;
4. else **both help** when both single-factor effects are significant gains (their sizes cannot
   be told apart);
5. else **cannot tell the factors apart on this cache**.

No branch attributes from a non-significant interval: each claim needs the rejections it names, so
a false claim needs a false rejection, and its rate is at most the family-wise level (measured by
simulation in tests/report/test_decomposition_sim.py and README, "Where does DSL's gain come from?").

A head takes part when it has at least two losses and at least two post-processings held by every
one of its losses, ``raw`` among them, with per-query counts (schema 2); others are left out with a
note. Rendered in Markdown and on the terminal (after the blocks, before the notes) and in
``--format json`` (key ``decomposition``); the LaTeX and CSV outputs stay the paper table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vtrbench import defaults
from vtrbench.errors import VtrbenchError
from vtrbench.report.perquery import MissingCounts
from vtrbench.report.stats import Effect, holm_intervals, joint_replicates, per_seed_values
from vtrbench.results import POSTPROCESSING, TRANSDUCTIVE

TITLE = "Loss × inference decomposition"
REFERENCE_LOSS = "infonce"

# the four cells, in the order of the contrast weights below; runs: which training each cell's
# seeds are (reference or target loss), so that the two post-processings of one training share seeds
CELLS = ("ref_raw", "tgt_raw", "ref_post", "tgt_post")
RUNS = (0, 1, 0, 1)
CONTRASTS: dict[str, tuple[int, int, int, int]] = {
    "loss@raw": (-1, 1, 0, 0),
    "loss@post": (0, 0, -1, 1),
    "inference@ref": (-1, 0, 1, 0),
    "inference@target": (0, -1, 0, 1),
    "interaction": (1, -1, -1, 1),
    "loss-vs-inference": (0, 1, -1, 0),
}
NO_CELL = "no target cell"
VERDICTS = ("interaction", "loss", "inference", "both", "cannot tell")
TARGET_HOW = {
    "default": "fixed before looking (the DSL-trained, DSL-inferred cell)",
    "named": "named by the user before looking",
    "data": "chosen from the data (the best mean among the cells that change both factors), after "
    "looking: its tests do not account for that choice",
}


@dataclass
class HeadDecomposition:
    """One head's 2-factor table (means), its 2 x 2 target, the tested contrasts and the sentence."""

    head: str
    losses: list[str]
    posts: list[str]
    reference: str
    means: pd.DataFrame  # losses x posts
    target: tuple[str, str] = ("", "")  # (loss, post)
    target_how: str = "default"  # a key of TARGET_HOW
    seeds: dict[str, int] = field(default_factory=dict)  # loss -> seeds in the 2 x 2
    estimates: np.ndarray | None = None  # the six contrasts, CONTRASTS order
    replicates: np.ndarray | None = None  # (6, n_boot)
    effects: dict[str, Effect] = field(default_factory=dict)  # CONTRASTS key -> Holm-tested
    verdict: str = ""
    sentence: str = ""
    shown: dict[str, str] = field(default_factory=dict)  # head/loss name -> as the report shows it

    def name(self, key: str) -> str:
        return self.shown.get(key, key)


@dataclass
class Decomposition:
    metric: str
    bootstrap: str
    n_boot: int
    heads: list[HeadDecomposition]
    notes: list[str] = field(default_factory=list)
    alpha: float = defaults.SIGNIFICANCE
    family: int = 0  # contrasts in Holm's family (6 per head)


def _metric_for(metric: str) -> str:
    # the decomposition needs a per-query metric; MdR/RSum fall back to t2v R@1
    name = metric.split("/", 1)[-1]
    return metric if "/" in metric and (name.startswith("R@") or name == "MnR") else "t2v/R@1"


def parse_target(target: str | Sequence[str] | None) -> tuple[str, str] | None:
    """``"LOSS:POST"`` or ``(loss, post)`` -> ``(loss, post)``; None stays None (the default target).
    One-line VtrbenchError for anything else, before any work."""
    if target is None:
        return None
    if isinstance(target, str):
        loss, sep, post = target.rpartition(":")
        parts = (loss.strip(), post.strip()) if sep else ()
    else:
        parts = tuple(target) if isinstance(target, (list, tuple)) else ()
    if len(parts) != 2 or not all(isinstance(p, str) and p for p in parts):
        raise VtrbenchError(
            f"--decomposition-target must be LOSS:POST (e.g. dsl:dsl or dsl:sinkhorn), got {target!r}"
        )
    if parts[1] not in POSTPROCESSING:
        raise VtrbenchError(
            f"--decomposition-target {parts[0]}:{parts[1]}: unknown post-processing {parts[1]!r}; "
            f"use one of {', '.join(POSTPROCESSING)}"
        )
    if parts[1] == "raw":
        raise VtrbenchError(
            f"--decomposition-target {parts[0]}:raw: the target must change the inference "
            "(raw is the reference's)"
        )
    return parts[0], parts[1]


def decompose(
    results: Sequence[dict[str, Any]],
    frame: pd.DataFrame,
    *,
    metric: str = "t2v/R@1",
    bootstrap: str = "seeds+queries",
    n_boot: int = 1000,
    boot_seed: int = 0,
    names: Any = None,
    target: str | Sequence[str] | None = None,
    alpha: float = defaults.SIGNIFICANCE,
) -> Decomposition | None:
    """The decomposition of ``results`` (``frame``: their :func:`results_frame`, loss variants named),
    or None when no head has two losses and two post-processings. ``names``: the report's
    :class:`~vtrbench.report.labels.Names`, so that heads and losses read as in the tables (the
    effects' keys stay the result files' names). ``target``: the 2 x 2's target cell
    (``"LOSS:POST"``; None: ``defaults.DECOMPOSITION_TARGET``, or the best mean where that is missing,
    labelled). Raises VtrbenchError when a named target is in no head's results."""
    named = parse_target(target)
    metric = _metric_for(metric)
    higher = not metric.endswith("MnR")
    heads: list[HeadDecomposition] = []
    notes: list[str] = []
    candidates = without_target = 0  # heads with two losses and two post-processings; without the cell
    for head, sub in frame.groupby("label", sort=True):
        hd, note = _head(results, sub, str(head), metric, named, higher, names)
        candidates += hd is not None or bool(note)
        without_target += NO_CELL in note
        if note:
            notes.append(note)
        if hd is None:
            continue
        cells = _cells(results, sub, hd, metric)
        if cells is None:
            notes.append(f"{head}: left out of the decomposition (a schema-1 result has no per-query counts)")
            continue
        hd.seeds = {hd.reference: cells["ref_raw"].shape[0], hd.target[0]: cells["tgt_raw"].shape[0]}
        hd.estimates, hd.replicates = two_by_two(cells, bootstrap=bootstrap, n_boot=n_boot, seed=boot_seed)
        heads.append(hd)
    if named is not None and candidates and without_target == candidates:
        raise VtrbenchError(
            f"--decomposition-target {named[0]}:{named[1]}: no head has that cell (losses: "
            f"{', '.join(sorted({str(x) for x in frame['loss'].unique()}))})"
        )
    if not heads:
        return None
    _test(heads, alpha, higher, metric)
    family = len(CONTRASTS) * len(heads)
    need = int(np.ceil(2 * family / alpha - 1))  # Holm's first level alpha / family, add-one p
    if n_boot < need:
        notes.append(
            f"{n_boot} bootstrap replicates cannot reach Holm's first level ({alpha:g} / {family}): "
            f"nothing can be significant; use --n-boot {need} or more"
        )
    return Decomposition(metric, bootstrap, n_boot, heads, notes, alpha, family)


def _head(
    results: Sequence[dict[str, Any]],
    sub: pd.DataFrame,
    head: str,
    metric: str,
    named: tuple[str, str] | None,
    higher: bool,
    names: Any,
) -> tuple[HeadDecomposition | None, str]:
    """One head's table of means and 2 x 2 target, or None (and why, when a note is due)."""
    losses = sorted(sub["loss"].unique(), key=str)
    if len(losses) < 2:
        return None, ""
    reference = REFERENCE_LOSS if REFERENCE_LOSS in losses else losses[0]
    losses = [reference] + [lo for lo in losses if lo != reference]
    posts = [
        p for p in POSTPROCESSING if all(((sub["loss"] == lo) & (sub["post"] == p)).any() for lo in losses)
    ]
    if len(posts) < 2 or "raw" not in posts:
        return None, ""
    wanted = named or defaults.DECOMPOSITION_TARGET
    loss = _match_loss(wanted[0], losses, reference)
    has_target = loss is not None and wanted[1] in posts
    if named is not None and not has_target:
        return (
            None,
            f"{head}: left out of the decomposition ({NO_CELL} {wanted[0]}:{wanted[1]} in its results)",
        )
    try:
        means = pd.DataFrame(
            [[float(_values(results, sub, lo, p, metric).mean()) for p in posts] for lo in losses],
            index=losses,
            columns=posts,
        )
    except MissingCounts:
        return None, f"{head}: left out of the decomposition (a schema-1 result has no per-query counts)"
    hd = HeadDecomposition(head, losses, posts, reference, means)
    if names is not None:
        hd.shown = {lo: names.get("loss", lo) for lo in losses} | {head: names.get("label", head)}
    if has_target:
        hd.target, hd.target_how = (str(loss), wanted[1]), "named" if named else "default"
        return hd, ""
    others = means.loc[[lo for lo in losses if lo != reference], [p for p in posts if p != "raw"]].stack()
    best = others.idxmax() if higher else others.idxmin()
    hd.target, hd.target_how = (str(best[0]), str(best[1])), "data"
    return hd, ""


def _match_loss(wanted: str, losses: list[str], reference: str) -> str | None:
    """The loss named ``wanted``, or its one variant ``wanted[...]``; never the reference loss."""
    if wanted in losses and wanted != reference:
        return wanted
    variants = [lo for lo in losses if lo.startswith(wanted + "[") and lo != reference]
    return variants[0] if len(variants) == 1 else None


def _runs(sub: pd.DataFrame, loss: str, posts: tuple[str, str]) -> list[int]:
    """The result indices of ``loss`` that hold both ``posts`` (one trained run each), in order."""
    rows = sub[sub["loss"] == loss]
    held = [set(rows[rows["post"] == p]["result"].astype(int)) for p in posts]
    return sorted(held[0] & held[1])


def _values(
    results: Sequence[dict[str, Any]], sub: pd.DataFrame, loss: str, post: str, metric: str
) -> np.ndarray:
    rows = sub[(sub["loss"] == loss) & (sub["post"] == post)]
    return per_seed_values([results[int(i)] for i in rows["result"]], post, metric)


def _cells(
    results: Sequence[dict[str, Any]], sub: pd.DataFrame, hd: HeadDecomposition, metric: str
) -> dict[str, np.ndarray] | None:
    """The 2 x 2's four (seeds, queries) arrays; a training's two cells hold the same runs in order."""
    loss, post = hd.target
    out = {}
    try:
        for key, lo in (("ref", hd.reference), ("tgt", loss)):
            runs = [results[i] for i in _runs(sub, lo, ("raw", post))]
            out[f"{key}_raw"] = per_seed_values(runs, "raw", metric)
            out[f"{key}_post"] = per_seed_values(runs, post, metric)
    except MissingCounts:
        return None
    return out


def two_by_two(
    cells: dict[str, np.ndarray], *, bootstrap: str = "seeds+queries", n_boot: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The six contrasts (:data:`CONTRASTS` order) of four cells ``{ref_raw, tgt_raw, ref_post,
    tgt_post}`` of (seeds, queries) values, and their ``(6, n_boot)`` joint bootstrap replicates."""
    means, reps = joint_replicates(
        [cells[c] for c in CELLS], RUNS, n_boot=n_boot, seed=seed, bootstrap=bootstrap
    )
    weights = np.array(list(CONTRASTS.values()), dtype=float)
    return weights @ means, weights @ reps


def verdict(effects: dict[str, Effect], higher: bool = True) -> str:
    """The decision rule of the module docstring: one of :data:`VERDICTS`."""
    sign = 1.0 if higher else -1.0

    def gain(key: str) -> bool:
        return effects[key].significant and sign * effects[key].estimate > 0

    def loss_of(key: str) -> bool:
        return effects[key].significant and sign * effects[key].estimate < 0

    if effects["interaction"].significant:
        return "interaction"
    if gain("loss@raw") and gain("loss-vs-inference"):
        return "loss"
    if gain("inference@ref") and loss_of("loss-vs-inference"):
        return "inference"
    if gain("loss@raw") and gain("inference@ref"):
        return "both"
    return "cannot tell"


def decide(
    cells: dict[str, np.ndarray],
    *,
    higher: bool = True,
    bootstrap: str = "seeds+queries",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = defaults.SIGNIFICANCE,
) -> tuple[str, dict[str, Effect]]:
    """One head on its own (a family of six): the verdict and the tested contrasts."""
    est, reps = two_by_two(cells, bootstrap=bootstrap, n_boot=n_boot, seed=seed)
    effects = dict(zip(CONTRASTS, holm_intervals(est, reps, alpha), strict=True))
    return verdict(effects, higher), effects


def _test(heads: list[HeadDecomposition], alpha: float, higher: bool, metric: str) -> None:
    """Holm over every head's six contrasts together, then each head's verdict and sentence."""
    est = np.concatenate([hd.estimates for hd in heads])  # type: ignore[arg-type]
    reps = np.concatenate([hd.replicates for hd in heads])  # type: ignore[arg-type]
    tested = holm_intervals(est, reps, alpha)
    for i, hd in enumerate(heads):
        hd.effects = dict(zip(CONTRASTS, tested[6 * i : 6 * i + 6], strict=True))
        hd.verdict = verdict(hd.effects, higher)
        hd.sentence = _sentence(hd, metric)


def _fmt(t: Effect) -> str:
    if not np.isfinite(t.lo):
        return f"{t.estimate:+.1f} [n/a]"
    return f"{t.estimate:+.1f} [{t.lo:+.1f}, {t.hi:+.1f}]"


def _effect_names(hd: HeadDecomposition) -> dict[str, str]:
    loss, post = hd.target
    tgt, ref = hd.name(loss), hd.name(hd.reference)
    return {
        "loss@raw": f"loss: {tgt} − {ref} at raw",
        "loss@post": f"loss: {tgt} − {ref} at {post}",
        "inference@ref": f"inference: {post} − raw with {ref}",
        "inference@target": f"inference: {post} − raw with {tgt}",
        "interaction": "interaction",
        "loss-vs-inference": f"{tgt} loss alone − {post} inference alone",
    }


def _sentence(hd: HeadDecomposition, metric: str) -> str:
    loss, post = hd.target
    tgt, ref, head = hd.name(loss), hd.name(hd.reference), hd.name(hd.head)
    e = hd.effects
    tag = " (transductive)" if TRANSDUCTIVE.get(post, False) else ""
    alone = (
        f"the {tgt} loss alone {_fmt(e['loss@raw'])}, {post}{tag} inference alone {_fmt(e['inference@ref'])}"
    )
    verdicts = {
        "interaction": f"the factors interact (interaction {_fmt(e['interaction'])}): the loss's effect "
        f"depends on the inference, so read the four effects, not one factor's share",
        "loss": f"the training loss carries the gain ({alone}; difference {_fmt(e['loss-vs-inference'])})",
        "inference": f"the inference post-processing carries the gain ({alone}; difference "
        f"{_fmt(e['loss-vs-inference'])})",
        "both": f"both factors help and which helps more cannot be told apart ({alone}; "
        f"difference {_fmt(e['loss-vs-inference'])})",
        "cannot tell": f"the factors cannot be told apart ({alone}; difference "
        f"{_fmt(e['loss-vs-inference'])}; interaction {_fmt(e['interaction'])})",
    }
    return (
        f"On this cache ({head}, {metric}, from ({ref}, raw) to ({tgt}, {post}), target "
        f"{TARGET_HOW[hd.target_how]}), {verdicts[hd.verdict]}."
    )


def _post_header(post: str) -> str:
    return f"{post} (T)" if TRANSDUCTIVE.get(post, False) else post


def intro(dec: Decomposition) -> str:
    """The text under the section's title: what the tables are, the family and the decision rule."""
    how = (
        "seeds and queries (each training's seeds shared by its post-processings)"
        if dec.bootstrap != "queries"
        else "queries (seeds averaged first)"
    )
    level = f"{100 * dec.alpha:g} %"
    return (
        "Rows: training loss; columns: inference post-processing, (T) = transductive (reads all test "
        f"queries at once); cells: mean {dec.metric}. Each head's 2 × 2 runs from the reference cell "
        "to its target cell; its six effects are differences of per-query expected "
        f"{dec.metric} with a joint bootstrap over {how}, {dec.n_boot} replicates, tested with Holm's "
        f"procedure over the {dec.family} effects of this section at family-wise {level}; each interval "
        "is at its Holm step's level (it excludes 0 exactly when the effect is significant, *). "
        "Rule: interaction if the interaction is significant; else a factor carries the gain only if its "
        "effect alone is a significant gain and significantly larger than the other's; both help if both "
        "are significant gains; otherwise the factors cannot be told apart."
    )


def head_tables(hd: HeadDecomposition) -> list[tuple[str, list[str], list[list[str]]]]:
    """``(title, columns, rows)`` of a head's two tables, as plain text (Markdown and terminal)."""
    cols = ["loss"] + [_post_header(p) for p in hd.posts]
    rows = [[hd.name(lo)] + [f"{hd.means.at[lo, p]:.1f}" for p in hd.posts] for lo in hd.losses]
    labels = _effect_names(hd)
    effect_rows = []
    for key, t in hd.effects.items():
        interval = f"[{t.lo:+.1f}, {t.hi:+.1f}]" if np.isfinite(t.lo) else "n/a (raise --n-boot)"
        mark = " *" if t.significant else ""
        effect_rows.append(
            [
                labels[key],
                f"{t.estimate:+.1f}{mark}",
                interval,
                f"{100 * (1 - t.level):.2f} %",
                f"{t.p_holm:.3g}",
            ]
        )
    loss, post = hd.target
    seeds = ", ".join(f"{hd.name(lo)} {n}" for lo, n in hd.seeds.items())
    return [
        (f"{hd.name(hd.head)}: training loss × inference (means)", cols, rows),
        (
            f"{hd.name(hd.head)}: 2 × 2 from ({hd.name(hd.reference)}, raw) to ({hd.name(loss)}, {post}), "
            f"seeds {seeds}",
            ["effect", "estimate", "interval", "level", "Holm p"],
            effect_rows,
        ),
    ]


def render_markdown(dec: Decomposition, escape: Any = str) -> list[str]:
    """The section as Markdown lines (``escape``: the report's Markdown escaping of names)."""
    lines = [f"## {TITLE} ({dec.metric})", "", intro(dec), ""]
    for hd in dec.heads:
        # one ### heading per table: each table has its own columns
        for title, cols, rows in head_tables(hd):
            lines += [f"### {escape(title)}", ""]
            lines += [_table([[escape(c) for c in row] for row in rows], [escape(c) for c in cols]), ""]
        lines += [escape(hd.sentence), ""]
    lines += [f"- {escape(n)}" for n in dec.notes]
    return lines


def _table(rows: list[list[str]], columns: list[str]) -> str:
    align = ["left"] + ["right"] * (len(columns) - 1)
    frame = pd.DataFrame(rows, columns=columns)
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, colalign=align)


def _finite(value: Any) -> Any:
    # an interval too wide to state (too few replicates for its Holm level) is null in JSON
    return None if isinstance(value, float) and not np.isfinite(value) else value


def to_data(dec: Decomposition) -> dict[str, Any]:
    """The section's numbers for ``--format json``."""
    return {
        "title": TITLE,
        "metric": dec.metric,
        "bootstrap": dec.bootstrap,
        "n_boot": dec.n_boot,
        "alpha": dec.alpha,
        "family": dec.family,
        "heads": [
            {
                "head": hd.head,
                "reference_loss": hd.reference,
                "losses": hd.losses,
                "posts": hd.posts,
                "means": {lo: {p: float(hd.means.at[lo, p]) for p in hd.posts} for lo in hd.losses},
                "target": {"loss": hd.target[0], "post": hd.target[1], "chosen": hd.target_how},
                "seeds": dict(hd.seeds),
                "effects": [
                    {"effect": key, **{k: _finite(v) for k, v in t._asdict().items()}}
                    for key, t in hd.effects.items()
                ],
                "verdict": hd.verdict,
                "sentence": hd.sentence,
            }
            for hd in dec.heads
        ],
        "notes": list(dec.notes),
    }
