"""The report in a terminal: rich tables that fit the window; a cell is shown whole or not at all.

Names wrap inside their column; numbers never wrap and are never cut. Every column gets an explicit
width computed here (rich, left to itself, shrinks all columns alike once its names cannot shrink
further, which cut ``+10.2 [+5.5, +15.0]`` to ``+10.2 [+5.5, +``). When all columns do not fit, whole
columns are left out, the least important first (R@1 both ways, RSum and Δ stay longest, then R@5,
R@10, MdR, ...), and a line names them. A window too narrow for even one number column gets the
rows as plain lines. Output that is not a terminal gets the plain Markdown instead (see
``report_cmds``); :func:`print_fitted` serves ``train``/``eval`` too.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from vtrbench.defaults import REPORT_NOTES
from vtrbench.report.decomposition import TITLE, head_tables, intro
from vtrbench.report.model import Block, Report, diff_header, text_columns, text_rows
from vtrbench.report.notes import place_notes

# Which metric columns stay first when the window is narrow ("diff": the Δ column).
PRIORITY = (
    "t2v/R@1", "v2t/R@1", "RSum", "diff", "t2v/R@5", "v2t/R@5", "t2v/R@10", "v2t/R@10", "t2v/MdR", "v2t/MdR",
)  # fmt: skip
NAME_MIN = 10  # a name column narrower than this is unreadable even when wrapped
HEADER_MIN = 8  # a number column's header wraps at words to the column's width, not narrower than this


@dataclass(frozen=True)
class Col:
    """One column as text: its header, its cells, and whether it is a name (wraps) or a number (never)."""

    header: str
    cells: Sequence[str]
    name: bool = False

    def widest_cell(self) -> int:
        return max((cell_len(c) for c in self.cells), default=0)

    def number_width(self) -> int:
        """A number column's width: its widest cell, or its header's longest word when wider."""
        words = self.header.split()
        return max(
            [self.widest_cell(), min(HEADER_MIN, cell_len(self.header))] + [cell_len(w) for w in words]
        )

    def header_lines(self, width: int) -> str:
        if self.name or cell_len(self.header) <= width:
            return self.header
        return "\n".join(textwrap.wrap(self.header, width=width, break_long_words=False))


@lru_cache(maxsize=64)
def _overhead(n: int) -> int:
    """Borders and padding of a table of ``n`` columns as :func:`_table` draws it, measured by rich."""
    probe = Table(pad_edge=False)
    for _ in range(n):
        probe.add_column(width=1)
    console = Console(width=10**6, file=_Null())  # measures only: never printed to
    return Measurement.get(console, console.options, probe).maximum - n


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def fit(cols: Sequence[Col], width: int, droppable: Sequence[int]) -> tuple[list[int], list[int]] | None:
    """The columns to show within ``width`` characters and each one's width.

    Every column not in ``droppable`` stays; ``droppable`` (most important first) loses columns from
    its end until the rest fits with each name column at least ``NAME_MIN`` wide (or its own width
    when narrower). Returns (kept column indices in table order, their widths), or None when not
    even one droppable column fits (or none at all when nothing is droppable).
    """
    drop = set(droppable)
    fixed = [j for j in range(len(cols)) if j not in drop]
    if not droppable:
        got = _widths(cols, fixed, width)
        return None if got is None else (fixed, got)
    for k in range(len(droppable), 0, -1):
        kept = sorted(fixed + list(droppable[:k]))
        got = _widths(cols, kept, width)
        if got is not None:
            return kept, got
    return None


def _widths(cols: Sequence[Col], kept: list[int], width: int) -> list[int] | None:
    natural = [
        max(cell_len(cols[j].header), cols[j].widest_cell()) if cols[j].name else cols[j].number_width()
        for j in kept
    ]
    smallest = [min(w, NAME_MIN) if cols[j].name else w for j, w in zip(kept, natural, strict=True)]
    room = width - _overhead(len(kept)) - sum(smallest)
    if room < 0:
        return None
    widths = list(smallest)
    # the room left goes to the names, the narrowest first, up to their natural widths
    for i in sorted(range(len(kept)), key=lambda i: natural[i]):
        extra = min(room, natural[i] - widths[i])
        widths[i] += extra
        room -= extra
    return widths


def _table(title: str | None, cols: Sequence[Col], widths: Sequence[int]) -> Table:
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    for col, w in zip(cols, widths, strict=True):
        if col.name:
            table.add_column(escape(col.header), width=w, overflow="fold")
        else:
            table.add_column(escape(col.header_lines(w)), width=w, justify="right", no_wrap=True)
    for i in range(len(cols[0].cells) if cols else 0):
        table.add_row(*(escape(c.cells[i]) for c in cols))
    return table


def print_fitted(console: Any, title: str | None, cols: Sequence[Col], droppable: Sequence[int]) -> list[str]:
    """Print the table fitted to ``console.width`` (columns in ``droppable`` left out as needed, least
    important last in that list); returns the headers of the columns left out. A window too narrow
    for any number column gets one plain line per row instead (nothing is ever cut)."""
    got = fit(cols, console.width, droppable)
    if got is None:
        if title:
            console.print(escape(title), highlight=False)
        for i in range(len(cols[0].cells) if cols else 0):
            parts = [c.cells[i] for c in cols if c.name]
            values = [f"{c.header} {c.cells[i]}" for c in cols if not c.name]
            console.print(
                escape(" · ".join(parts) + ": " + ", ".join(values)), highlight=False, soft_wrap=True
            )
        return []
    kept, widths = got
    console.print(_table(title, [cols[j] for j in kept], widths))
    return [cols[j].header for j in range(len(cols)) if j not in kept]


def plain_table(cols: Sequence[Col]) -> str:
    """``cols`` as a Markdown pipe table with every cell whole (for a pipe or a log: no width limit);
    names left-aligned, numbers right-aligned."""
    widths = [max(cell_len(c.header), c.widest_cell(), 3) for c in cols]

    def line(cells: Sequence[str]) -> str:
        padded = [
            (t + " " * (w - cell_len(t))) if c.name else (" " * (w - cell_len(t)) + t)
            for c, t, w in zip(cols, cells, widths, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if not c.name else (":" + "-" * (w + 1))
            for c, w in zip(cols, widths, strict=True)
        )
        + "|"
    )
    rows = [line([c.cells[i] for c in cols]) for i in range(len(cols[0].cells) if cols else 0)]
    return "\n".join([line([c.header for c in cols]), rule, *rows])


def _block_cols(block: Block, report: Report, with_diff: bool) -> tuple[list[Col], list[int], list[str]]:
    """A block's columns, the droppable ones by priority, and each column's key (metric or "diff")."""
    rows = text_rows(block, "plain", with_diff=with_diff)
    headers = text_columns(block, "plain") + ([diff_header(report, "plain")] if with_diff else [])
    n_fields = len(block.mean.index.names)
    metrics = [str(c) for c in block.mean.columns]
    paper = block.layout == "paper"
    if paper:
        keys = [""] * n_fields + ["n"] + metrics + (["diff"] if with_diff else [])
    else:
        keys = [""] * n_fields + metrics + ["n"]
    cols = [Col(h, [r[j] for r in rows], name=j < n_fields) for j, h in enumerate(headers)]
    metric_idx = [j for j, k in enumerate(keys) if k not in ("", "n")]
    if paper:

        def rank(j: int) -> int:
            return PRIORITY.index(keys[j]) if keys[j] in PRIORITY else len(PRIORITY)

        # the order of the table breaks ties (columns without a priority keep theirs)
        metric_idx.sort(key=lambda j: (rank(j), j))
    return cols, metric_idx, keys


def _print_block(block: Block, report: Report, console: Any) -> list[str]:
    """One block, fitted; returns the names of the metric columns left out."""
    paper = block.layout == "paper"
    with_diff = paper and block.diff is not None
    cols, droppable, keys = _block_cols(block, report, with_diff)
    got = fit(cols, console.width, droppable)
    if got is None:
        return print_fitted(console, block.title, cols, droppable)
    kept_keys = {keys[j] for j in got[0]}
    keep = [c for c in block.mean.columns if str(c) in kept_keys]
    shown = replace(
        block,
        mean=block.mean[keep],
        std=block.std[keep],
        n=block.n[keep],
        best=block.best[keep],
        sig=None if block.sig is None else block.sig[keep],
    )
    # the shown columns again (n lists seeds per shown column only); they fit: nothing got wider
    cols, _, _ = _block_cols(shown, report, with_diff and "diff" in kept_keys)
    print_fitted(console, block.title, cols, [])
    left = [str(c) for c in block.mean.columns if c not in keep]
    return left + (["Δ"] if with_diff and "diff" not in kept_keys else [])


def _left_out(console: Any, names: Sequence[str], what: str) -> None:
    if names:
        console.print(
            f"{what} left out to fit {console.width} characters: {', '.join(names)} "
            "(pipe the output or use --output for the full Markdown table)",
            highlight=False,
        )


def print_report(report: Report, console: Any, *, notes: str = REPORT_NOTES) -> None:
    """Print ``report`` on a rich console, each block as a table no wider than the console; the
    provenance and notes as ``--notes`` places them (a long tie rule at the end, not on top)."""
    placed = place_notes(report, notes)
    if placed.provenance:
        console.print(escape("Provenance: " + " · ".join(placed.provenance)), highlight=False)
    for w in placed.warnings:
        console.print(f"[bold red]Warning:[/] {escape(w)}", highlight=False)
    left_out: list[str] = []
    for block in report.blocks:
        left_out += [c for c in _print_block(block, report, console) if c not in left_out]
    _left_out(console, sorted(left_out), "columns")
    if report.decomposition is not None:
        dec = report.decomposition
        console.print(f"[bold]{escape(f'{TITLE} ({dec.metric})')}[/]", highlight=False)
        console.print(escape(intro(dec)), highlight=False)
        dropped: list[str] = []
        for hd in dec.heads:
            for title, headers, rows in head_tables(hd):
                cols = [Col(h, [r[j] for r in rows], name=j == 0) for j, h in enumerate(headers)]
                # inference columns in the table's order: raw (or the first) stays longest
                out = print_fitted(console, title, cols, list(range(1, len(cols))))
                dropped += [h for h in out if h not in dropped]
            console.print(escape(hd.sentence), highlight=False)
        _left_out(console, dropped, "inference columns")
        for n in dec.notes:
            console.print(f"- {escape(n)}", highlight=False)
    for note in placed.notes:
        console.print(f"- {escape(note)}", highlight=False)
