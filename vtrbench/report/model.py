"""The report's data model: :class:`Block` and :class:`Report`, and the cell text every view shares.

Layer: below the table builder (``options``, ``blocks``, ``notes``, ``tables``) and the views
(``markdown``, ``latex``, ``terminal``, ``data``, ``figures``, and ``vtrbench.browse``). The cell
text (mean ± std, Δ with its interval, n, headers; ``style`` ``md``, ``tex`` or ``plain``) lives here
with the blocks it formats, so that :meth:`Block.formatted` needs nothing above this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vtrbench.report.labels import Names
from vtrbench.report.stats import ALPHA
from vtrbench.report.text import latex_escape, markdown_escape
from vtrbench.results import HIGHER_IS_BETTER

SIGNIFICANCE_MARK = "†"
# How the † note refers to the Δ interval's bootstrap; LaTeX (no Δ column) replaces it by the method.
SAME_BOOTSTRAP = "the replicates of the Δ interval's bootstrap"
# Printed decimals per metric (R@K in percent, ranks 1 = best).
DECIMALS = {"R@1": 1, "R@5": 1, "R@10": 1, "R@50": 1, "MdR": 1, "MnR": 1, "RSum": 1}
# Column headers of the row fields (other fields show their own name).
FIELD_HEADERS = {"label": "Method", "loss": "Loss", "head": "Head"}
NOT_AVAILABLE = "n/a"
_EMPTY = {"md": "—", "tex": "--", "plain": "—"}


def metric_name(metric: str) -> str:
    """``t2v/R@1`` -> ``R@1``; ``RSum`` stays ``RSum``."""
    return metric.split("/", 1)[1] if "/" in metric else metric


def sort_key(text: str) -> tuple[Any, ...]:
    """Numbers in numeric order (seed 2 before seed 10), then text, with numbers inside text in
    numeric order too (``dsl[temperature=10]`` before ``dsl[temperature=100]``)."""
    try:
        return (0, float(text), text)
    except ValueError:
        parts = re.split(r"(\d+(?:\.\d+)?)", text)
        return (1, tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts)), text)


# --------------------------------------------------------------------------- the report


@dataclass
class Block:
    """One post-processing's table. Frames share one index (rows) and one set of columns.

    ``mean``/``std``/``n``: mean, sample std (NaN for one seed) and seed count per cell; ``best``: the
    cell is the best of its column; ``metrics``: the metric each column shows. ``diff``/``diff_lo``/
    ``diff_hi``: Δ vs the baseline with its 95 % interval (NaN for the baseline itself and empty cells),
    None without a baseline or when the baseline has no row in this block.
    """

    post: str
    title: str
    transductive: bool
    layout: str
    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    best: pd.DataFrame
    metrics: dict[str, str]
    diff: pd.DataFrame | None = None
    diff_lo: pd.DataFrame | None = None
    diff_hi: pd.DataFrame | None = None
    baseline_row: tuple[str, ...] | None = None
    col_field: str | None = None
    sig: pd.DataFrame | None = None  # the cell's adjusted p-value is below the level (ALPHA)
    names: Names = field(default_factory=Names)
    diff_p: pd.DataFrame | None = None  # bootstrap p-value of each difference (NaN: no test)
    diff_p_adj: pd.DataFrame | None = None  # after the report's correction (NaN outside the family)
    diff_na: pd.DataFrame | None = None  # True: a difference was asked but a file has no tie counts

    def formatted(self) -> pd.DataFrame:
        """The block as plain text (no bold), row fields as leading columns: for terminals and tests."""
        return pd.DataFrame(text_rows(self, "plain"), columns=text_columns(self, "plain"))


@dataclass
class Report:
    layout: str
    metric: str
    row_fields: tuple[str, ...]
    col_field: str | None
    blocks: list[Block]
    provenance: list[str]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baseline: str | None = None
    n_results: int = 0
    frame: pd.DataFrame | None = None
    names: Names = field(default_factory=Names)
    bootstrap: str = "seeds+queries"
    interval: str = ""  # how the baseline intervals were computed, in words
    caption: str | None = None
    tex_label: str | None = None
    correction: str = "none"  # the correction applied to the † marks (holm, bonferroni, none)
    n_tested: int = 0  # cells in the correction's family (every cell that can carry a †)
    alpha: float = ALPHA
    # the loss x inference section (vtrbench.report.decomposition), None when the results lack two
    # losses and two post-processings
    decomposition: Any = None

    @property
    def baseline_shown(self) -> str | None:
        """The baseline row as the table names it (short names, renames)."""
        found = next((b.baseline_row for b in self.blocks if b.baseline_row is not None), None)
        if found is None:
            return self.baseline
        return " + ".join(self.names.get(f, k) for f, k in zip(self.row_fields, found, strict=False))


# --------------------------------------------------------------------------- cell text


def display_name(text: str, names: Names, style: str) -> str:
    """A display name, its footnote mark (``CAMoE^a``) set as a superscript."""
    if text in names.marks:
        base, mark = names.marks[text]
        if style == "tex":
            return rf"{latex_escape(base, 'name')}\textsuperscript{{{mark}}}"
        return f"{_esc(base, style)}^{mark}"
    return _esc(text, style)


def _signed(x: float, dec: int = 1) -> str:
    s = f"{x:+.{dec}f}"
    return "+" + s[1:] if s.startswith("-") and float(s) == 0 else s


def _cell(mean: float, std: float, dec: int, bold: bool, style: str, sig: bool = False) -> str:
    if pd.isna(mean):
        return _EMPTY[style]
    m = f"{mean:.{dec}f}"
    s = None if pd.isna(std) else f"{std:.{dec}f}"
    if style == "tex":
        m = rf"\textbf{{{m}}}" if bold else m
        # The std as a plain subscript (no ±, explained in the notes) and † stacked above it: the
        # cell is no wider than "62.5" plus its subscript, which keeps nine columns near the text width.
        sup = r"^{\dagger}" if sig else ""
        return m + (f"${sup}$" if sup else "") if s is None else rf"{m}${sup}_{{{s}}}$"
    if style == "md" and bold:
        m = f"**{m}**"
    m += SIGNIFICANCE_MARK if sig else ""
    return m if s is None else f"{m} ± {s}"


def _diff_text(d: float, lo: float, hi: float, dec: int, style: str, na: bool = False) -> str:
    if np.isnan(d):
        return NOT_AVAILABLE if na else _EMPTY[style]
    if style == "tex":
        return rf"${_signed(d, dec)}\ [{_signed(lo, dec)}, {_signed(hi, dec)}]$"
    return f"{_signed(d, dec)} [{_signed(lo, dec)}, {_signed(hi, dec)}]"


def _diff_arrays(block: Block, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Δ, lo, hi as arrays (rows × ``columns``), NaN where there is no difference."""
    assert block.diff is not None and block.diff_lo is not None and block.diff_hi is not None
    return tuple(
        f.reindex(columns=list(columns)).to_numpy(dtype=float)
        for f in (block.diff, block.diff_lo, block.diff_hi)
    )


def _na_array(block: Block, columns: Sequence[str]) -> np.ndarray:
    """True where a difference was asked but a result lacks the per-query tie counts (n/a)."""
    if block.diff_na is None:
        return np.zeros((len(block.mean.index), len(columns)), dtype=bool)
    return block.diff_na.reindex(columns=list(columns), fill_value=False).to_numpy(dtype=bool)


def _n_text(counts: Sequence[int], style: str) -> str:
    present = {c for c in counts if c > 0}
    if len(present) <= 1:
        return str(present.pop()) if present else _EMPTY[style]
    return "/".join(str(c) if c > 0 else "–" if style != "tex" else "--" for c in counts)


def _esc(text: str, style: str) -> str:
    if style == "tex":
        return latex_escape(text, "name")
    return markdown_escape(text) if style == "md" else str(text)


def metric_header(metric: str, style: str, with_direction: bool = True) -> str:
    """A metric column's header with its arrow (``t2v R@1 ↑``; ``R@1↑`` in LaTeX without direction)."""
    name = metric_name(metric)
    arrow = "↑" if HIGHER_IS_BETTER[name] else "↓"
    text = metric.replace("/", " ") if with_direction else name
    return _esc(f"{text} {arrow}" if style != "tex" else f"{text}{arrow}", style)


def diff_header(report: Report, style: str) -> str:
    """The header of the Δ column (paper) or the Δ rows (pivot)."""
    return _esc(f"Δ {report.metric} vs {report.baseline_shown} [95 % CI]", style)


def field_header(name: str, style: str) -> str:
    """The header of a row field's column (``Method``, ``Loss``, ``Head`` or the field's name)."""
    return _esc(FIELD_HEADERS.get(name, name), style)


def text_columns(block: Block, style: str) -> list[str]:
    """Column headers matching :func:`text_rows`: row fields, then n and the metrics (paper) or the
    pivot columns and n (pivot)."""
    fields = [field_header(f, style) for f in block.mean.index.names]
    if block.layout == "paper":
        return fields + ["n"] + [metric_header(c, style) for c in block.mean.columns]
    cols = [
        display_name(block.names.get(block.col_field or "", str(c)), block.names, style)
        for c in block.mean.columns
    ]
    return fields + cols + ["n"]


def _decimals(block: Block, columns: Sequence[str]) -> list[int]:
    default = next(iter(block.metrics.values()))
    return [DECIMALS[metric_name(block.metrics.get(c, default))] for c in columns]


def text_rows(
    block: Block, style: str, with_diff: bool = False, columns: Sequence[str] | None = None
) -> list[list[str]]:
    """Formatted rows: row fields, then n and the cells (paper) or the cells and n (pivot); ``columns``
    widens a pivot block to columns that it lacks (shown empty)."""
    cols = list(block.mean.columns) if columns is None else list(columns)
    mean = block.mean.reindex(columns=cols).to_numpy(dtype=float)
    std = block.std.reindex(columns=cols).to_numpy(dtype=float, copy=True)
    if style == "tex" and block.layout == "paper":
        # LaTeX leaves out the std of median ranks (a coarse statistic: whole or half ranks per seed),
        # which keeps the default nine columns within an article's text width; Markdown keeps it.
        for j, c in enumerate(cols):
            if metric_name(block.metrics.get(c, c)) == "MdR":
                std[:, j] = np.nan
    n = block.n.reindex(columns=cols, fill_value=0).to_numpy(dtype=int)
    best = block.best.reindex(columns=cols, fill_value=False).to_numpy(dtype=bool)
    sig = (
        np.zeros(mean.shape, dtype=bool)
        if block.sig is None
        else block.sig.reindex(columns=cols, fill_value=False).to_numpy(dtype=bool)
    )
    fields = list(block.mean.index.names)
    decs = _decimals(block, cols)
    paper = block.layout == "paper"
    if with_diff and block.diff is not None:
        diff = _diff_arrays(block, block.diff.columns[:1])
        diff_na = _na_array(block, block.diff.columns[:1])
        diff_dec = _decimals(block, block.diff.columns[:1])[0]
    out = []
    for i, loc in enumerate(block.mean.index):
        key = loc if isinstance(loc, tuple) else (loc,)
        cells = [
            _cell(mean[i, j], std[i, j], decs[j], bool(best[i, j]), style, bool(sig[i, j]))
            for j in range(len(cols))
        ]
        head = [
            display_name(block.names.get(f, k), block.names, style) for f, k in zip(fields, key, strict=True)
        ]
        n_text = _n_text(n[i].tolist(), style)
        row = head + [n_text] + cells if paper else head + cells + [n_text]
        if with_diff and block.diff is not None:
            d, lo, hi = (a[i, 0] for a in diff)
            row.append(
                "(baseline)"
                if key == block.baseline_row
                else _diff_text(d, lo, hi, diff_dec, style, bool(diff_na[i, 0]))
            )
        out.append(row)
    return out


def pivot_diff_rows(block: Block, style: str, columns: Sequence[str] | None = None) -> list[list[str]]:
    """Pivot Δ rows: every row with at least one difference (not the baseline)."""
    assert block.diff is not None
    cols = list(block.diff.columns) if columns is None else list(columns)
    d, lo, hi = _diff_arrays(block, cols)
    na = _na_array(block, cols)
    decs = _decimals(block, cols)
    return [
        [display_name(block.names.get(block.mean.index.name or "", loc), block.names, style)]
        + [_diff_text(d[i, j], lo[i, j], hi[i, j], decs[j], style, bool(na[i, j])) for j in range(len(cols))]
        for i, loc in enumerate(block.diff.index)
        if not np.isnan(d[i]).all() or na[i].any()
    ]
