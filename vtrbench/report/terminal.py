"""The report in a terminal: rich tables that fit the window instead of cutting cells to ``ca…``.

Names wrap inside their column; numbers never do. When all metric columns do not fit, the most
important ones stay (R@1 both ways, RSum, then R@5, R@10, MdR, ...) and a line names those left out.
Output that is not a terminal gets the plain Markdown instead (see ``report_cmds``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.markup import escape
from rich.table import Table

from vtrbench.defaults import REPORT_NOTES
from vtrbench.report.decomposition import TITLE, head_tables, intro
from vtrbench.report.model import Block, Report, diff_header, text_columns, text_rows
from vtrbench.report.notes import place_notes

# Which metric columns stay first when the window is narrow.
PRIORITY = ("t2v/R@1", "v2t/R@1", "RSum", "t2v/R@5", "v2t/R@5", "t2v/R@10", "v2t/R@10", "t2v/MdR", "v2t/MdR")
NAME_MIN = 10  # a name column narrower than this is unreadable even when wrapped
NAME_NICE = 16


def _keep(block: Block, width: int, with_diff: bool) -> list[str]:
    """The metric columns of ``block`` that fit ``width`` characters next to the names and n."""
    rows = text_rows(block, "plain", with_diff=with_diff)
    headers = text_columns(block, "plain")
    n_fields = len(block.mean.index.names)
    paper = block.layout == "paper"
    offset = n_fields + 1 if paper else n_fields
    cols = list(block.mean.columns)

    def col_width(j: int) -> int:
        return max([len(headers[j])] + [len(r[j]) for r in rows]) + 3  # padding and the rule

    # Names wrap beyond NAME_NICE characters; the n column and the table's outer rules are small.
    fixed = sum(min(max(len(r[k]) for r in rows), NAME_NICE) + 3 for k in range(n_fields)) + 6 + 2
    if with_diff:
        fixed += max(len(r[-1]) for r in rows) + 3
    order = sorted(range(len(cols)), key=lambda j: PRIORITY.index(cols[j]) if cols[j] in PRIORITY else 99)
    kept: list[int] = []
    used = fixed
    for j in order:
        w = col_width(offset + j)
        if used + w <= width or not kept:
            kept.append(j)
            used += w
    return [cols[j] for j in sorted(kept)]


def print_report(report: Report, console: Any, *, notes: str = REPORT_NOTES) -> None:
    """Print ``report`` on a rich console, each block as a table no wider than the console; the
    provenance and notes as ``--notes`` places them (a long tie rule at the end, not on top)."""
    width = console.width
    placed = place_notes(report, notes)
    if placed.provenance:
        console.print(escape("Provenance: " + " · ".join(placed.provenance)), highlight=False)
    for w in placed.warnings:
        console.print(f"[bold red]Warning:[/] {escape(w)}", highlight=False)
    left_out: set[str] = set()
    for block in report.blocks:
        paper = block.layout == "paper"
        with_diff = paper and block.diff is not None and width >= 100
        keep = _keep(block, width, with_diff) if paper else list(block.mean.columns)
        left_out |= {c for c in block.mean.columns if c not in keep}
        shown = replace(
            block,
            mean=block.mean[keep],
            std=block.std[keep],
            n=block.n[keep],
            best=block.best[keep],
            sig=None if block.sig is None else block.sig[keep],
        )
        headers = text_columns(shown, "plain") + ([diff_header(report, "plain")] if with_diff else [])
        table = Table(title=block.title, title_justify="left", expand=False, pad_edge=False)
        n_fields = len(block.mean.index.names)
        for j, h in enumerate(headers):
            if j < n_fields:
                table.add_column(escape(h), overflow="fold", min_width=NAME_MIN, ratio=1)
            else:
                table.add_column(escape(h), justify="right", no_wrap=True)
        for row in text_rows(shown, "plain", with_diff=with_diff):
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    if left_out:
        console.print(
            f"columns left out to fit {width} characters: {', '.join(sorted(left_out))} "
            "(pipe the output or use --output for the full Markdown table)",
            highlight=False,
        )
    if report.decomposition is not None:
        dec = report.decomposition
        console.print(f"[bold]{escape(f'{TITLE} ({dec.metric})')}[/]", highlight=False)
        console.print(escape(intro(dec)), highlight=False)
        for hd in dec.heads:
            for title, cols, rows in head_tables(hd):
                table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
                for j, h in enumerate(cols):
                    table.add_column(escape(h), justify="left" if j == 0 else "right", overflow="fold")
                for row in rows:
                    table.add_row(*(escape(c) for c in row))
                console.print(table)
            console.print(escape(hd.sentence), highlight=False)
        for n in dec.notes:
            console.print(f"- {escape(n)}", highlight=False)
    for note in placed.notes:
        console.print(f"- {escape(note)}", highlight=False)
