"""Will a LaTeX table fit one page? The height of a report's float, estimated, and its parts.

LaTeX cannot break a float across pages: a table taller than the page stops with "Float too large
for page" and runs off its bottom (issue 30: 33 rows in three blocks and twenty lines of notes). A
paper sets such a table as several floats, each with the header, the later ones "(continued)". This
module estimates the height of each piece from the lengths that :mod:`.latex` sets (``\\scriptsize``
rows, booktabs rules, notes in ``\\scriptsize`` over the line width) on the page of a 10 pt
article, which ``--standalone`` compiles: 550 pt of text height, 345 pt of line width. The lengths
were measured with pdflatex (TeX Live 2022, Debian) on the tables of ``tests.report_helpers.
paper_results`` and the committed demo-like fixtures, the tabular in a box 700 pt wide (so,
unscaled): a row 8.20 pt, a row with a † 1.0-1.3 pt more, a block's rule and title 12.7 pt, the
frame (top and bottom rules, one header row) 13.9 pt; a one-line caption 20.0 pt and each more line
11.4-12 pt; notes about 95 characters a line (80 in bold). Each constant below is rounded up, so the
estimate is 1-10 % above what TeX sets: ``tests/report/test_report_pages.py`` checks that it is never
below and that the plans compile without "Float too large". A tabular wider than the line is scaled
down, and so shorter than estimated: ``auto`` may cut a table that would just fit (``--split none``
keeps one float).

Layer: a leaf of ``report`` (plain numbers and strings), used by ``latex``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from vtrbench.defaults import REPORT_SPLITS
from vtrbench.errors import VtrbenchError

SPLITS = REPORT_SPLITS

# Measured in a 10 pt article (see the module note); each is an upper bound of what TeX set.
PAGE_PT = 550.0  # \textheight: the most a float may be
BUDGET = 1.0  # the share of it a float may fill: every length below is rounded up already
ROW_PT = 8.3  # one body row at \scriptsize, the std as a subscript (8.20 measured)
DAGGER_PT = 1.4  # more for a row with a † over a subscript (1.0-1.3 measured)
HEAD_ROW_PT = 8.3  # one header row
CMIDRULE_PT = 5.0  # a header line of \cmidrule only
RULES_PT = 6.0  # \toprule + \bottomrule with their spacing (5.7 measured)
BLOCK_PT = 13.0  # \midrule and the block's title row (12.7 measured)
NOTE_LINE_PT = 8.0  # \scriptsize baselineskip
NOTE_CHARS = 90  # characters of \scriptsize text in one 345 pt line, raggedright
BOLD_NOTE_CHARS = 80  # the same in bold (the warnings)
CAPTION_LINE_PT = 12.0  # \normalsize baselineskip
CAPTION_CHARS = 75  # with its "Table 1: "
CAPTION_SKIP_PT = 9.0  # \abovecaptionskip less what a line's height leaves (1 line: 20.0 pt measured)
NOTES_SKIP_PT = 8.0  # \smallskip before the notes

#: ``(block index, first row, end row)`` pieces of one float.
Part = list[tuple[int, int, int]]


def _text_length(latex: str) -> int:
    """Roughly the characters a line of LaTeX prints: commands and braces do not take room."""
    text = re.sub(r"\\allowbreak\{\}|\\[a-zA-Z]+\*?|[{}$^_]", "", latex)
    return len(text)


def notes_height(notes: Sequence[str]) -> float:
    """The notes block under a float (each note a paragraph), in pt; 0 without notes."""
    if not notes:
        return 0.0
    lines = sum(
        max(1, math.ceil(_text_length(n) / (BOLD_NOTE_CHARS if n.startswith("\\textbf") else NOTE_CHARS)))
        for n in notes
    )
    return NOTES_SKIP_PT + lines * NOTE_LINE_PT


def caption_height(caption: str | None) -> float:
    if caption is None:
        return 0.0
    return CAPTION_SKIP_PT + math.ceil((len("Table 99: ") + len(caption)) / CAPTION_CHARS) * CAPTION_LINE_PT


def head_height(lines: Sequence[str]) -> float:
    """The header of a tabular (its rows and \\cmidrule lines) with the top and bottom rules."""
    return RULES_PT + sum(CMIDRULE_PT if line.startswith("\\cmidrule") else HEAD_ROW_PT for line in lines)


def row_height(row: str) -> float:
    """The height of one body row of LaTeX (a ``... \\\\`` line of :mod:`.latex`), in pt."""
    return ROW_PT + (DAGGER_PT if "\\dagger" in row else 0.0)


def plan_floats(
    blocks: Sequence[Sequence[float]],
    *,
    head: Sequence[str],
    caption: str | None,
    notes: Sequence[str],
    split: str,
) -> list[Part]:
    """How to cut a table into floats; ``blocks`` holds each block's row heights (:func:`row_height`),
    ``head`` the header lines of the tabular.

    ``none``: one float. ``blocks``: one float per block. ``auto``: one float when it fits
    ``BUDGET`` of the page, else as many blocks per float as fit, a block taller than a page in
    parts (its title repeated, "(continued)"), the notes under the last float. Every float but the
    last fits the budget; the last too, unless its notes alone are taller than a page.
    """
    if split not in SPLITS:
        raise VtrbenchError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    whole: Part = [(b, 0, len(rows)) for b, rows in enumerate(blocks)]
    if split == "none" or not blocks:
        return [whole]
    budget = BUDGET * PAGE_PT
    frame = head_height(head) + caption_height(caption)
    foot = notes_height(notes)

    def height(part: Part, last: bool = False) -> float:
        body = sum(BLOCK_PT + sum(blocks[b][lo:hi]) for b, lo, hi in part)
        return frame + body + (foot if last else 0.0)

    if split == "auto" and height(whole, True) <= budget:
        return [whole]
    parts: list[Part] = []
    current: Part = []
    for b, rows in enumerate(blocks):
        if split == "blocks" and current:
            parts.append(current)
            current = []
        lo = 0
        while lo < len(rows):
            hi = _fill(rows, lo, budget - height(current) - BLOCK_PT)
            if hi - lo < min(len(rows) - lo, 3) and current:
                # a block starts on a new float rather than with one or two rows at the bottom
                parts.append(current)
                current = []
                continue
            hi = max(hi, lo + 1)
            current.append((b, lo, hi))
            lo = hi
            if lo < len(rows):
                parts.append(current)
                current = []
    if current:
        parts.append(current)
    _make_room_for_notes(parts, blocks, budget - frame - foot, height(parts[-1], True) > budget)
    return parts


def _fill(rows: Sequence[float], lo: int, room: float) -> int:
    """The end of the rows from ``lo`` that fit ``room`` pt."""
    hi = lo
    while hi < len(rows) and rows[hi] <= room:
        room -= rows[hi]
        hi += 1
    return hi


def _make_room_for_notes(
    parts: list[Part], blocks: Sequence[Sequence[float]], room: float, over: bool
) -> None:
    """When the notes do not fit under the last float, its last rows move on to a float of their own
    with room for the notes (notes alone taller than a page stay where they are: --notes short is
    the way out)."""
    if not over:
        return
    last = parts[-1]
    b, lo, hi = last[-1]
    start = hi
    while start > lo and sum(blocks[b][start - 1 : hi]) <= room - BLOCK_PT:
        start -= 1
    if start == hi:
        return
    if start > lo:
        last[-1] = (b, lo, start)
    else:
        last.pop()
        if not last:
            parts.pop()
    parts.append([(b, start, hi)])
