"""The report as a booktabs LaTeX table."""

from __future__ import annotations

from dataclasses import dataclass

from vtrbench.defaults import REPORT_NOTES, REPORT_SPLIT
from vtrbench.report.model import (
    SAME_BOOTSTRAP,
    Block,
    Report,
    diff_header,
    display_name,
    field_header,
    metric_header,
    pivot_diff_rows,
    sort_key,
    text_rows,
)
from vtrbench.report.notes import Placement, place_notes
from vtrbench.report.pagefit import plan_floats, row_height
from vtrbench.report.text import latex_escape, latex_prose


def _tex_row(cells: list[str]) -> str:
    # A row whose first cell starts with '[' would be read as the optional argument of the previous '\\'.
    if cells and cells[0].startswith("["):
        cells = ["{}" + cells[0]] + cells[1:]
    return " & ".join(cells) + r" \\"


def _column_groups(columns: list[str]) -> list[tuple[str, int]]:
    """Consecutive columns of one direction as (direction or '', count) for the spanning header."""
    groups: list[tuple[str, int]] = []
    for c in columns:
        d = c.split("/", 1)[0] if "/" in c else ""
        if groups and groups[-1][0] == d:
            groups[-1] = (d, groups[-1][1] + 1)
        else:
            groups.append((d, 1))
    return groups


def seed_counts(report: Report) -> str | None:
    """'3 seeds' or '3 seeds (Zero-shot: 1)' when every row's cells average one number of seeds, so
    that LaTeX can drop the n column; None when a row mixes counts (then the column stays)."""
    per_row: dict[str, int] = {}
    for block in report.blocks:
        fields = list(block.mean.index.names)
        for loc, counts in zip(block.mean.index, block.n.to_numpy(dtype=int), strict=True):
            present = {int(c) for c in counts if c > 0}
            if len(present) > 1:
                return None
            key = loc if isinstance(loc, tuple) else (loc,)
            name = " + ".join(
                block.names.get(f, k)
                for f, k in zip(fields, key, strict=True)
                if not (f == "loss" and k == "none")
            )
            if present:
                n = present.pop()
                if per_row.setdefault(name, n) != n:
                    return None
    if not per_row:
        return None
    values = list(per_row.values())
    common = max(set(values), key=values.count)
    odd = [f"{name}: {n}" for name, n in per_row.items() if n != common]
    return f"{common} seed{'s' * (common != 1)}" + (f" ({'; '.join(odd)})" if odd else "")


@dataclass
class _Head:
    """The tabular's column spec and header rows, and what the body needs to match them."""

    spec: str
    n_cols: int
    lines: list[str]
    n_fields: int  # leading name columns
    columns: list[str]  # metric columns (paper) or pivot column values
    with_n: bool  # the paper layout keeps its n column (rows mix seed counts)
    seeds: str | None  # the seed counts for the notes when the n column is dropped


def _paper_head(report: Report) -> _Head:
    first = report.blocks[0]
    n_fields = len(first.mean.index.names)
    fields = [field_header(f, "tex") for f in first.mean.index.names]
    columns = list(first.mean.columns)
    seeds = seed_counts(report)
    with_n = seeds is None
    groups = _column_groups(columns)
    head_cells = [""] * (n_fields + int(with_n))
    rules = []
    start = n_fields + int(with_n) + 1
    for d, count in groups:
        head_cells.append(rf"\multicolumn{{{count}}}{{c}}{{{latex_escape(d)}}}" if d and count > 1 else "")
        if d and count > 1:
            rules.append(rf"\cmidrule(lr){{{start}-{start + count - 1}}}")
        head_cells += [""] * (count - 1) if not (d and count > 1) else []
        start += count
    head = [
        _tex_row(head_cells) if rules else "",
        "".join(rules),
        _tex_row(
            fields
            + (["$n$"] if with_n else [])
            + [
                metric_header(c, "tex", with_direction=not (dict(groups).get(c.split("/", 1)[0], 0) > 1))
                for c in columns
            ]
        ),
    ]
    return _Head(
        spec="l" * n_fields + "r" * (int(with_n) + len(columns)),
        n_cols=n_fields + int(with_n) + len(columns),
        lines=[h for h in head if h],
        n_fields=n_fields,
        columns=columns,
        with_n=with_n,
        seeds=seeds,
    )


def _pivot_head(report: Report) -> _Head:
    first = report.blocks[0]
    fields = [field_header(f, "tex") for f in first.mean.index.names]
    columns = sorted({c for b in report.blocks for c in b.mean.columns}, key=sort_key)
    label = f"{metric_header(report.metric, 'tex')} by {latex_escape(report.col_field or '')}"
    head = [
        _tex_row(["", rf"\multicolumn{{{len(columns)}}}{{c}}{{{label}}}", ""]),
        rf"\cmidrule(lr){{2-{len(columns) + 1}}}",
        _tex_row(
            fields
            + [
                display_name(first.names.get(report.col_field or "", str(c)), first.names, "tex")
                for c in columns
            ]
            + ["$n$"]
        ),
    ]
    return _Head(
        spec="l" + "r" * (len(columns) + 1),
        n_cols=1 + len(columns) + 1,
        lines=head,
        n_fields=len(first.mean.index.names),
        columns=columns,
        with_n=True,
        seeds=None,
    )


def _title_row(head: _Head, title: str) -> str:
    return _tex_row([rf"\multicolumn{{{head.n_cols}}}{{l}}{{\textit{{{latex_escape(title)}}}}}"])


def _block_lines(report: Report, block: Block, head: _Head) -> list[str]:
    """A block's body rows (data rows; pivot: also the Δ rows under them)."""
    if report.layout == "paper":
        rows = text_rows(block, "tex")
        if not head.with_n:
            rows = [r[: head.n_fields] + r[head.n_fields + 1 :] for r in rows]
        return [_tex_row(r) for r in rows]
    lines = [_tex_row(r) for r in text_rows(block, "tex", columns=head.columns)]
    if block.diff is not None:
        lines += [
            r"\addlinespace",
            _tex_row([rf"\multicolumn{{{head.n_cols}}}{{l}}{{\textit{{{diff_header(report, 'tex')}}}}}"]),
        ]
        lines += [_tex_row(r + [""]) for r in pivot_diff_rows(block, "tex", head.columns)]
    return lines


HEADER = [
    "% Generated by vtrbench report from result files; regenerate it rather than editing it.",
    r"% Needs \usepackage{booktabs} and \usepackage{graphicx} (graphicx only scales a table wider than",
    r"% the line, as a last resort).",
]


def render_latex(
    report: Report,
    *,
    standalone: bool = False,
    wide: bool = False,
    notes: str = REPORT_NOTES,
    split: str = REPORT_SPLIT,
) -> str:
    """The report as one booktabs ``table`` (``wide=True``: ``table*`` across a two-column page);
    ``standalone=True`` wraps it in a compilable article.

    Paper layout: the chosen metric columns, significance marks (†) instead of a Δ column, seed counts
    in the notes when each row has one count. The notes and the provenance go into a small footnote
    block under the table, never into rows; ``notes`` (``full``, ``short``, ``none``, see
    :func:`vtrbench.report.notes.place_notes`) says how much of them. The tabular is scaled down to
    the line width only when it is wider (a last resort that needs graphicx; the log then says
    "vtrbench: table scaled").

    ``split``: a table taller than a page (estimated for a 10 pt article, see :mod:`.pagefit`) is
    set as several floats, each with the header, the later ones captioned "(continued)" under the
    same table number and the notes under the last (``auto``); ``blocks``: one float per
    post-processing block; ``none``: one float whatever its height.
    """
    head = _paper_head(report) if report.layout == "paper" else _pivot_head(report)
    placed = place_notes(report, notes)
    foot = _footnotes(report, head.seeds, placed)
    chunks = [_block_lines(report, b, head) for b in report.blocks]
    parts = plan_floats(
        [[row_height(r) for r in rows] for rows in chunks],
        head=head.lines,
        caption=report.caption,
        notes=foot,
        split=split,
    )
    lines = list(HEADER)
    for i, part in enumerate(parts):
        body: list[str] = []
        for b, lo, hi in part:
            title = report.blocks[b].title + (" (continued)" if lo > 0 else "")  # a block that goes on
            body += [r"\midrule", _title_row(head, title), *chunks[b][lo:hi]]
        last = i == len(parts) - 1
        lines += _float(report, head, body, wide, first=i == 0, foot=foot if last else [])
    if len(parts) > 1:
        why = "one per block" if split == "blocks" else "one page could not hold it with its notes"
        lines.insert(len(HEADER), f"% Set as {len(parts)} floats ({why}); the later ones say (continued).")
    text = "\n".join(lines) + "\n"
    if standalone:
        text = (
            "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n"
            "\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\begin{document}\n" + text + "\\end{document}\n"
        )
    return text


def _float(
    report: Report, head: _Head, body: list[str], wide: bool, *, first: bool, foot: list[str]
) -> list[str]:
    """One float: the tabular (scaled only when wider than the line), the caption and the notes."""
    env = "table*" if wide else "table"
    lines = [
        rf"\begin{{{env}}}[t]",
        r"\centering",
        r"\scriptsize",
        r"\setlength{\tabcolsep}{1.5pt}",
        r"\ifdefined\vtrbenchbox\else\newsavebox{\vtrbenchbox}\fi",
        r"\sbox{\vtrbenchbox}{%",
        rf"\begin{{tabular}}{{{head.spec}}}",
        r"\toprule",
        *head.lines,
        *body,
        r"\bottomrule",
        r"\end{tabular}}%",
        r"\ifdim\wd\vtrbenchbox>\linewidth",
        r"\typeout{vtrbench: table scaled to the line width}%",
        r"\resizebox{\linewidth}{!}{\usebox{\vtrbenchbox}}%",
        r"\else\usebox{\vtrbenchbox}\fi",
    ]
    if report.caption is not None or report.tex_label is not None:
        caption = latex_escape(report.caption or "", "caption")
        if first:
            lines.append(rf"\caption{{{caption}}}")
        else:
            # the same table number as the first part, as a paper continues a table
            lines += [r"\addtocounter{table}{-1}", rf"\caption{{{caption} (continued)}}"]
    if report.tex_label is not None and first:
        lines.append(rf"\label{{{report.tex_label}}}")
    if foot:
        lines += [r"\par\smallskip", r"{\scriptsize\raggedright", *foot, "}"]
    return lines + [rf"\end{{{env}}}"]


def render_latex_notes(report: Report) -> str:
    """Every note of ``report`` in full (warnings, seeds, notes, the tie rule, provenance) as LaTeX
    paragraphs, for ``--notes-file``: ``\\input`` it where the notes belong (an appendix, say)."""
    head = _paper_head(report) if report.layout == "paper" else _pivot_head(report)
    where = rf"Table~\ref{{{report.tex_label}}}" if report.tex_label else "the table"
    return (
        "% Generated by vtrbench report: the notes of the table, in full.\n"
        + rf"\paragraph{{Notes to {where}.}}"
        + "\n"
        + "\n".join(_footnotes(report, head.seeds, place_notes(report, "full")))
        + "\n"
    )


def _footnotes(report: Report, seeds: str | None, placed: Placement) -> list[str]:
    """Warnings, notes and provenance under the table (those ``placed`` there), the notes reworded
    for a table without a Δ column and with the std as a subscript."""
    paper = report.layout == "paper"
    cells_note = (
        "cells: mean over the seeds of one configuration, with the sample std (ddof=1) as subscript "
        "(MdR: the mean alone; one seed: the mean alone)"
    )
    notes = [
        (
            cells_note
            if paper and n.startswith("cells:")
            else n.replace("mean ± sample std (ddof=1)", "mean with the sample std (ddof=1) as subscript")
        )
        for n in placed.notes
        # LaTeX shows no Δ column: the † footnote says how its intervals were computed instead.
        if not (paper and n.startswith("Δ:"))
    ]
    if paper:
        notes = [n.replace(SAME_BOOTSTRAP, report.interval) for n in notes]
    if seeds is not None and (placed.notes or placed.provenance):
        notes.insert(0, f"seeds per row: {seeds}")
    lines = [rf"\textbf{{Warning: {latex_prose(w)}.}}\par" for w in placed.warnings]
    lines += [_note(n) + r"\par" for n in notes]
    if placed.provenance:
        lines.append("Provenance: " + "; ".join(latex_prose(p) for p in placed.provenance) + r".\par")
    return lines


def _note(text: str) -> str:
    # Footnote marks of short labels ("a: CAMoE with ...") and the significance mark set as in the table.
    if len(text) > 2 and text[1] == ":" and text[0].isalpha() and text[0].islower():
        return rf"\textsuperscript{{{text[0]}}}{latex_prose(text[2:])}"
    if text.startswith("†"):
        return r"$^{\dagger}$" + latex_prose(text[1:])
    return latex_prose(text[0].upper() + text[1:])
