"""The report as GitHub-renderable Markdown."""

from __future__ import annotations

import pandas as pd

from vtrbench.defaults import REPORT_NOTES
from vtrbench.report.decomposition import render_markdown as decomposition_markdown
from vtrbench.report.model import Report, diff_header, pivot_diff_rows, text_columns, text_rows
from vtrbench.report.notes import place_notes
from vtrbench.report.text import markdown_escape


def _provenance(report: Report, provenance: list[str]) -> list[str]:
    """The provenance line and the labels line (the tables show short names; the result files' full
    labels stay findable here)."""
    lines = [f"Provenance: {' · '.join(markdown_escape(p) for p in provenance)}", ""]
    if report.names.full:
        lines += [
            "Labels: "
            + " · ".join(
                f"{markdown_escape(short)} = `{full.replace('`', chr(39))}`"
                if "\n" not in full
                else f"{markdown_escape(short)} = {markdown_escape(full)}"
                for short, full in report.names.full.items()
            ),
            "",
        ]
    return lines


def render_markdown(report: Report, *, notes: str = REPORT_NOTES) -> str:
    """The report as Markdown: provenance, warnings, one pipe table per post-processing block, notes.

    ``notes`` (``full``, ``short``, ``none``; see :func:`vtrbench.report.notes.place_notes`): how much
    of the provenance and the notes stays beside the tables; :func:`render_markdown_notes` writes
    them all. A long tie rule is named in the provenance and given in full among the notes.
    """
    placed = place_notes(report, notes)
    lines = _provenance(report, placed.provenance) if placed.provenance else []
    for w in placed.warnings:
        lines += [f"> **Warning: {markdown_escape(w)}**", ""]
    for block in report.blocks:
        title = (
            block.title
            if report.layout == "paper"
            else f"{block.title}: {report.metric} by {report.col_field}"
        )
        lines += [f"### {markdown_escape(title)}", ""]
        columns = text_columns(block, "md")
        with_diff = report.layout == "paper" and block.diff is not None
        if with_diff:
            columns.append(diff_header(report, "md"))
        rows = text_rows(block, "md", with_diff=with_diff)
        lines += [_markdown_table(rows, columns, n_left=len(block.mean.index.names)), ""]
        if not report.layout == "paper" and block.diff is not None:
            lines += [f"{diff_header(report, 'md')}:", ""]
            columns = [markdown_escape(report.row_fields[0])] + [
                markdown_escape(str(c)) for c in block.diff.columns
            ]
            lines += [_markdown_table(pivot_diff_rows(block, "md"), columns, n_left=1), ""]
    if report.decomposition is not None:
        lines += decomposition_markdown(report.decomposition, markdown_escape)
    lines += [f"- {markdown_escape(n)}" for n in placed.notes]
    return "\n".join(lines) + "\n"


def render_markdown_notes(report: Report) -> str:
    """Every note of ``report`` in full, for ``--notes-file``: provenance, labels, warnings, notes
    (with the whole tie rule)."""
    placed = place_notes(report, "full")
    lines = ["## Notes", "", *_provenance(report, placed.provenance)]
    for w in placed.warnings:
        lines += [f"> **Warning: {markdown_escape(w)}**", ""]
    lines += [f"- {markdown_escape(n)}" for n in placed.notes]
    return "\n".join(lines) + "\n"


def _markdown_table(rows: list[list[str]], columns: list[str], n_left: int) -> str:
    align = ["left"] * n_left + ["right"] * (len(columns) - n_left)
    frame = pd.DataFrame(rows, columns=columns)
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, colalign=align)
