"""``vtrbench browse``: result files + their cache -> one self-contained HTML page.

The page (``index.html``, no other file) holds its CSS, JavaScript, data and thumbnails (``data:``
URIs) inline and a Content-Security-Policy that lets it load nothing else: it opens offline from
disk and still works when the folder is mailed. It shows

- the ablation table of ``vtrbench report`` (the same Report object: numbers, bold, Δ and †),
  sortable by any column;
- a per-query drill-down for two systems (default: the best by RSum and the baseline): the
  queries where A beats B most and the reverse, with the caption, the ground-truth video's
  thumbnail strip, both ranks, each system's top-5 (when the result files carry ``topk``, schema 2)
  and CAMoE's gate weights for the query (``per_query_gate``); filters by text, caption length
  and how the verb stream was found;
- a gate summary: for each CAMoE system, which expert gets the largest weight, by kind of query;
- training curves: each system's per-epoch ``history`` (loss, learning rate, logit scale and, for
  runs with ``--val-fraction``, validation metrics), seeds overlaid, drawn by the page as inline SVG.

With one system (or the same system picked as A and B) the drill-down lists that system's own
misses and hits instead of comparing it with itself; sections without data are left out.

Layering: this package reads result files (through vtrbench.report) and the cache (captions, ids,
thumbnails); it never imports torch or open_clip.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vtrbench.browse.page import DEFAULT_SHOWN, render_page
from vtrbench.cache import STATUS_OK, FeatureCache
from vtrbench.errors import VtrbenchError
from vtrbench.io import check_output_path
from vtrbench.report import (
    Report,
    build_report,
    check_comparable,
    load_results,
    plot_report,
    require_matplotlib,
)
from vtrbench.report.model import diff_header, text_columns, text_rows
from vtrbench.results import atomic_write_text

TOPK_SHOWN = 5
__all__ = ["DEFAULT_SHOWN", "TOPK_SHOWN", "BrowseSummary", "build_site", "curves", "page_data"]


@dataclass
class BrowseSummary:
    page: Path
    systems: int
    queries: int
    bytes: int
    has_topk: bool
    has_thumbnails: bool
    a: str
    b: str

    @property
    def drill(self) -> str:
        """What the drill-down opens on, in words: ``"A vs B"``, or one system's own queries."""
        return f"{self.a}'s own queries" if self.a == self.b else f"{self.a} vs {self.b}"


def build_site(
    results: list[str | Path],
    cache: str | Path,
    output: str | Path,
    *,
    a: str | None = None,
    b: str | None = None,
    baseline: str | None = None,
    post: str = "raw",
) -> BrowseSummary:
    """Write ``output/index.html`` for the result files under ``results`` and their ``cache``.

    ``a``/``b``: the two systems compared first (their table names, e.g. ``"CAMoE + DSL"`` or
    ``"camoe + dsl"``); default the best by RSum and the baseline. ``baseline``: as ``report``'s
    (default ``meanp + infonce`` when present). Every other pair can be chosen in the page.
    """
    loaded = load_results([Path(p) for p in results])
    if not loaded:
        raise VtrbenchError(f"no result files under {', '.join(map(str, results))}")
    check_comparable(loaded)  # one cache, test split and protocol, or one line naming the mix
    out_dir = Path(output)
    # the folder and the index.html it gets, probed as report's --output (one line before any work)
    check_output_path(output, "--output", inside="index.html")
    systems = _systems(loaded, post)
    base = baseline or _default_baseline(systems)
    report = build_report(loaded, layout="paper", baseline=base if base in systems else None)
    for s in systems.values():
        s["shown"] = " + ".join(
            report.names.get(f, k) for f, k in zip(("label", "loss"), s["key"], strict=True)
        )
    if baseline is not None and base not in systems:
        # as report does: a baseline that is no system is refused (listing them), never dropped
        base = _pick(baseline, systems, "--baseline")
        report = build_report(loaded, layout="paper", baseline=base)
    first = loaded[0]
    split = str(first["protocol"]["test_split"])
    with FeatureCache(Path(cache)) as fc:
        # the fingerprint also tells apart two caches of one config with other bytes (older results
        # have only the config hash)
        want = str(first["cache"].get("fingerprint") or first["cache"].get("config_hash"))
        have = fc.fingerprint() if first["cache"].get("fingerprint") else fc.config_hash
        if have != want:
            raise VtrbenchError(
                f"the results were computed on cache {want[:8]}, but --cache {cache} is {have[:8]}"
            )
        query_data = _queries(fc, split, int(first["protocol"]["n_queries"]))
    pick_a = _pick(a, systems, "--a") if a else max(systems, key=lambda k: systems[k]["rsum"])
    pick_b = _pick(b, systems, "--b") if b else (base if base in systems and base != pick_a else None)
    if pick_b is None:
        # one system: B = A, and the page lists that system's own queries (no "X vs X")
        pick_b = min(systems, key=lambda k: systems[k]["rsum"]) if len(systems) > 1 else pick_a
    data = {
        "title": f"vtrbench browse: {first.get('dataset')} · test split {split}",
        "post": post,
        "systems": [
            {
                "id": k,
                "name": s["shown"],
                "seeds": s["seeds"],
                "ranks": s["ranks"],
                "topk": s["topk"],
                "scores": s["scores"],
                "tied": s["tied"],
                "tied_v2t": s["tied_v2t"],
                "ranks_v2t": s["ranks_v2t"],
                "topk_v2t": s["topk_v2t"],
                "scores_v2t": s["scores_v2t"],
                "topk_seed": s["topk_seed"],
                "gate": s["gate"],
                "history": s["history"],
            }
            for k, s in systems.items()
        ],
        # footnote marks of short names ("CAMoE^a"): the page sets the mark as a superscript
        "marks": [[text, base, mark] for text, (base, mark) in report.names.marks.items()],
        "a": pick_a,
        "b": pick_b,
        **query_data,
        "tables": _tables(report),
        "gate_summary": _gate_summary(systems, query_data),
        "figure_svg": _figure(loaded, post),
        "notes": list(report.notes) + list(report.warnings),
        "provenance": list(report.provenance),
    }
    html = render_page(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "index.html"
    atomic_write_text(page, html)
    return BrowseSummary(
        page=page,
        systems=len(systems),
        queries=len(query_data["captions"]),
        bytes=len(html.encode()),
        has_topk=any(s["topk"] for s in systems.values()),
        has_thumbnails=any(query_data["thumbs"]),
        a=systems[pick_a]["shown"],
        b=systems[pick_b]["shown"],
    )


def _systems(results: list[dict[str, Any]], post: str) -> dict[str, dict[str, Any]]:
    """Per (label, loss) and direction: seed-averaged per-query ranks, top-k (and its scores) of the
    lowest seed; mean gates. t2v under ``ranks``/``topk``/``scores``, v2t (videos as queries, test
    captions as gallery) under the same names with ``_v2t``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(str(r.get("label")), str(r.get("loss")))].append(r)
    out: dict[str, dict[str, Any]] = {}
    for key, rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: int(r.get("seed", 0)))
        with_post = [r for r in rs if post in (r.get("per_query_ranks") or {})]
        if not with_post:
            continue
        gates = [r["per_query_gate"] for r in with_post if r.get("per_query_gate")]
        gate = (
            {e: np.round(np.mean([g[e] for g in gates], axis=0), 4).tolist() for e in gates[0]}
            if gates
            else None
        )
        # "best" by RSum (the sum of six recalls): steadier on small test splits than R@1 alone
        rsum = float(np.mean([_rsum(r["metrics"][post]) for r in with_post]))
        system: dict[str, Any] = {
            "key": key,
            "seeds": [int(r.get("seed", 0)) for r in with_post],
            "topk_seed": int(with_post[0].get("seed", 0)),
            "gate": gate,
            "rsum": rsum,
            "history": [h for h in map(curves, with_post) if h] or None,
        }
        for direction, suffix in (("t2v", ""), ("v2t", "_v2t")):
            ranks = np.mean(
                [np.asarray(r["per_query_ranks"][post][direction], dtype=float) for r in with_post], axis=0
            )
            topk = ((with_post[0].get("topk") or {}).get(post) or {}).get(direction)
            # the scores of those items (results written before topk_scores have none)
            scores = (
                ((with_post[0].get("topk_scores") or {}).get(post) or {}).get(direction) if topk else None
            )
            # how many wrong items tie the ground truth (lowest seed; schema 1 has no counts): a rank
            # ending in .5 is a tie, e.g. meanP's time-reversed twin on the demo data
            counts = ((with_post[0].get("per_query") or {}).get(post) or {}).get(direction)
            system["tied" + suffix] = [int(t) for t in counts["tied"]] if counts else None
            system["ranks" + suffix] = np.round(ranks, 2).tolist()
            system["topk" + suffix] = [row[:TOPK_SHOWN] for row in topk] if topk else None
            system["scores" + suffix] = [row[:TOPK_SHOWN] for row in scores] if scores else None
        out[f"{key[0]} + {key[1]}"] = system
    if not out:
        raise VtrbenchError(f"no result holds per-query ranks for post-processing {post!r}")
    n = {len(s["ranks"]) for s in out.values()}
    if len(n) > 1:
        raise VtrbenchError(
            f"the results rank different numbers of queries ({sorted(n)}); use one test split"
        )
    return out


HISTORY_SERIES = ("loss", "lr", "logit_scale")


def _finite(value: Any) -> float | None:
    """A number the page can draw, else None (a gap in the curve): JSON has no NaN or Infinity, and
    a string must never reach the page as a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def curves(result: dict[str, Any]) -> dict[str, Any] | None:
    """One result's ``history`` as the page draws it: ``{seed, epoch: [...], loss: [...], lr, logit_scale,
    val: {metric: [...]}}``, one value per epoch (None where an epoch lacks it); None without history.
    Series no epoch holds are left out (``lr`` in files written before it, ``val`` without validation)."""
    history = [h for h in (result.get("history") or []) if isinstance(h, dict)]
    epochs = [_finite(h.get("epoch")) for h in history]
    history = [h for h, e in zip(history, epochs, strict=True) if e is not None]
    if not history:
        return None
    out: dict[str, Any] = {"seed": int(result.get("seed", 0)), "epoch": [int(h["epoch"]) for h in history]}
    for name in HISTORY_SERIES:
        values = [_finite(h.get(name)) for h in history]
        if any(v is not None for v in values):
            out[name] = values
    vals = [h.get("val") if isinstance(h.get("val"), dict) else {} for h in history]
    keys = sorted({k for v in vals for k in v}, key=str)
    if keys:
        out["val"] = {str(k): [_finite(v.get(k)) for v in vals] for k in keys}
    return out


def _rsum(metrics: dict[str, Any]) -> float:
    if "RSum" in metrics:
        return float(metrics["RSum"])
    return float(sum(metrics[d][f"R@{k}"] for d in ("t2v", "v2t") for k in (1, 5, 10)))


def _default_baseline(systems: dict[str, Any]) -> str | None:
    for want in ("meanp + infonce", "meanp + dsl", "zeroshot + infonce"):
        if want in systems:
            return want
    return next((k for k in systems if k.startswith("meanp")), None)


def _pick(name: str, systems: dict[str, dict[str, Any]], option: str) -> str:
    for k, s in systems.items():
        if name in (k, s["shown"]) or name.lower() in (k.lower(), s["shown"].lower()):
            return k
    raise VtrbenchError(
        f"{option} {name!r} is not a system of these results "
        f"(available: {', '.join(s['shown'] for s in systems.values())})"
    )


def _queries(fc: Any, split: str, n_queries: int) -> dict[str, Any]:
    """Captions, ground-truth gallery index, verb source, video ids and thumbnails of a split, in the
    order evaluation ranks them (vtrbench.runs.data.load_split: failed videos dropped with their captions)."""
    video_rows, text_rows = fc.split_rows(split)
    ok = fc.read_rows("videos", "status", video_rows) == STATUS_OK
    video_rows = np.asarray(video_rows)[ok]
    local = {int(r): i for i, r in enumerate(video_rows)}
    text_video = fc.read_rows("texts", "video", text_rows)
    keep = np.array([int(v) in local for v in text_video], dtype=bool)
    text_rows = np.asarray(text_rows)[keep]
    if len(text_rows) != n_queries:
        raise VtrbenchError(
            f"split {split!r} of {fc.path} has {len(text_rows)} usable captions, the results rank {n_queries}"
        )
    captions = fc.read_strings("texts", "caption", text_rows)
    verb = (
        fc.read_strings("texts", "verb_source", text_rows)
        if "verb_source" in fc.file["texts"]
        else ["unknown"] * len(text_rows)
    )
    ids = fc.read_strings("videos", "id", video_rows)
    thumbs = fc.thumbnails(video_rows) or [""] * len(video_rows)
    return {
        "captions": captions,
        "gt": [local[int(v)] for v in text_video[keep]],
        "verb": verb,
        "videos": ids,
        "thumbs": thumbs,
    }


def _figure(results: list[dict[str, Any]], post: str) -> str:
    """report's figure (recall@K curves, CAMoE gates) as inline SVG; "" without matplotlib."""
    try:
        require_matplotlib()
    except VtrbenchError:
        return ""
    with tempfile.TemporaryDirectory(prefix="vtrbench-browse-") as tmp:
        svg = plot_report(results, Path(tmp) / "figure.svg", post=post).read_text(encoding="utf-8")
    # the XML prolog and DOCTYPE are for a standalone file; inline SVG starts at the <svg> element.
    # matplotlib's RDF <metadata> names URLs (namespaces, never fetched): dropped to keep the page plain
    svg = svg[svg.index("<svg") :]
    if "<metadata>" in svg and "</metadata>" in svg:
        svg = svg[: svg.index("<metadata>")] + svg[svg.index("</metadata>") + len("</metadata>") :]
    return svg


def _tables(report: Report) -> list[dict[str, Any]]:
    """Each post-processing block as header + rows of cell text, exactly as ``report`` prints them."""
    tables = []
    for block in report.blocks:
        columns = text_columns(block, "plain")
        with_diff = block.diff is not None
        if with_diff:
            columns.append(diff_header(report, "plain"))
        rows = text_rows(block, "plain", with_diff=with_diff)
        left = len(block.mean.index.names)
        # bold as in report's Markdown: the best of each column (paper layout: fields, n, metrics)
        best = block.best.reindex(columns=block.mean.columns, fill_value=False).to_numpy(dtype=bool)
        bold = [[left + 1 + j for j in range(best.shape[1]) if best[i, j]] for i in range(best.shape[0])]
        tables.append(
            {
                "title": block.title,
                "columns": columns,
                "rows": rows,
                "left": left,
                "bold": bold,
                "diff": with_diff,  # the last column is Δ [CI]: the page lets it wrap
            }
        )
    return tables


def _gate_summary(systems: dict[str, dict[str, Any]], q: dict[str, Any]) -> list[dict[str, Any]]:
    """For each gated system: per kind of query (verb stream source, caption length), how often each
    expert gets the largest weight, and the mean weights."""
    out = []
    lengths = np.array([len(c.split()) for c in q["captions"]])
    cuts = np.quantile(lengths, [1 / 3, 2 / 3]) if len(lengths) else np.array([0, 0])
    for s in systems.values():
        if not s["gate"]:
            continue
        experts = list(s["gate"])
        w = np.array([s["gate"][e] for e in experts]).T  # (queries, experts)
        kinds: dict[str, np.ndarray] = {}
        for src in sorted(set(q["verb"])):
            kinds[f"verb stream: {src}"] = np.array([v == src for v in q["verb"]])
        kinds[f"short (≤ {cuts[0]:.0f} words)"] = lengths <= cuts[0]
        kinds[f"long (> {cuts[1]:.0f} words)"] = lengths > cuts[1]
        rows = []
        for kind, mask in kinds.items():
            if not mask.any():
                continue
            top = Counter(int(i) for i in w[mask].argmax(axis=1))
            rows.append(
                {
                    "kind": kind,
                    "n": int(mask.sum()),
                    "top": {experts[i]: top.get(i, 0) for i in range(len(experts))},
                    "mean": {e: round(float(w[mask, i].mean()), 3) for i, e in enumerate(experts)},
                }
            )
        out.append({"system": s["shown"], "experts": experts, "rows": rows})
    return out


def page_data(page: Path) -> dict[str, Any]:
    """The JSON data embedded in a page written by :func:`build_site` (for tests and tools)."""
    text = Path(page).read_text(encoding="utf-8")
    start = text.index('<script id="data" type="application/json">') + len(
        '<script id="data" type="application/json">'
    )
    return json.loads(text[start : text.index("</script>", start)].replace("<\\/", "</"))
