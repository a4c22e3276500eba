"""Cell text shared by the Markdown and LaTeX writers: escaping, mean ± std, Δ, headers."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import pandas as pd

from vtrbench.errors import VtrbenchError
from vtrbench.report.labels import Names
from vtrbench.report.tables import DECIMALS, SIGNIFICANCE_MARK, Block, Report, _metric_name
from vtrbench.results import HIGHER_IS_BETTER

_EMPTY = {"md": "—", "tex": "--", "plain": "—"}

# --------------------------------------------------------------------------- formatting

_LATEX_CHARS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "≤": r"$\le$",
    "≥": r"$\ge$",
    "Δ": r"$\Delta$",
    "→": r"$\to$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "×": r"$\times$",
    "—": "---",
    "–": "--",
    "·": r"$\cdot$",
    "…": r"\dots{}",
    "τ": r"$\tau$",
    "β": r"$\beta$",
}
# Greek letters LaTeX sets in math mode without packages; capitals that look Latin are set as Latin.
_GREEK = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta", "η": "eta",
    "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu", "ξ": "xi", "π": "pi",
    "ρ": "rho", "σ": "sigma", "ς": "varsigma", "τ": "tau", "υ": "upsilon", "φ": "phi", "χ": "chi",
    "ψ": "psi", "ω": "omega", "Γ": "Gamma", "Δ": "Delta", "Θ": "Theta", "Λ": "Lambda", "Ξ": "Xi",
    "Π": "Pi", "Σ": "Sigma", "Υ": "Upsilon", "Φ": "Phi", "Ψ": "Psi", "Ω": "Omega", "µ": "mu",
}  # fmt: skip
_GREEK_LATIN = dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΧο", "ABEZHIKMNOPTXo", strict=True))
# Letters with their own LaTeX command (OT1, no packages).
_LETTERS = {
    "ß": r"\ss{}", "æ": r"\ae{}", "Æ": r"\AE{}", "ø": r"\o{}", "Ø": r"\O{}", "å": r"\aa{}", "Å": r"\AA{}",
    "œ": r"\oe{}", "Œ": r"\OE{}", "ł": r"\l{}", "Ł": r"\L{}", "ı": r"\i{}",
    "✓": r"\ensuremath{\surd}", "✔": r"\ensuremath{\surd}", "°": r"\ensuremath{^\circ}",
    "†": r"\dag{}", "‡": r"\ddag{}", "§": r"\S{}", "¶": r"\P{}", "•": r"\textbullet{}",
    "©": r"\copyright{}", "£": r"\pounds{}", "“": "``", "”": "''", "‘": "`", "’": "'",
    "\u00a0": "~", "−": "-",
}  # fmt: skip
# Combining accents (after Unicode decomposition of é, ü, ñ, č, ...) and LaTeX's accent commands.
_ACCENTS = {
    "\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0308": '"', "\u0327": "c",
    "\u030c": "v", "\u030a": "r", "\u0304": "=", "\u0306": "u", "\u0307": ".", "\u030b": "H",
}  # fmt: skip
# Column headers of the row fields (other fields show their own name).
FIELD_HEADERS = {"label": "Method", "loss": "Loss", "head": "Head"}
_MARKDOWN_SPECIAL = set("\\`*_|<>")


def _one_line(text: str) -> str:
    # A newline in a label would end a Markdown table row or start a paragraph inside a LaTeX cell.
    return " ".join(str(text).split()) if any(c in str(text) for c in "\n\r\t\v\f") else str(text)


def latex_escape(text: str, what: str = "text") -> str:
    """Text safe for LaTeX on one line, in plain ASCII: the ten special characters, the Unicode symbols
    the report prints, Greek letters (``\\ensuremath{\\alpha}``), accented Latin letters (``\\'{e}``),
    a few letters and marks with their own command (ß, ø, ✓ as ``\\surd``); line breaks become spaces.

    Any other non-ASCII character (e.g. CJK) raises one VtrbenchError naming it and ``what`` holds it:
    pdflatex cannot set it without packages the document may not load.
    """
    return "".join(_latex_char(c, text, what) for c in _one_line(text))


# Tokens longer than this get break points after / . _ - (paths, run ids, file names): an
# unbreakable file path in a warning ran 5 pt past the text width once the checkout lived deeper.
_LONG_TOKEN = 30


def latex_prose(text: str, what: str = "text") -> str:
    """:func:`latex_escape` for running text (warnings, notes, provenance): long tokens such as file
    paths may break after ``/``, ``.``, ``_`` or ``-`` (``\\allowbreak``); short ones never do."""
    out = []
    for token in re.split(r"(\s+)", _one_line(text)):
        if len(token) > _LONG_TOKEN:
            pieces = re.split(r"(?<=[/._-])(?=.)", token)
            out.append(r"\allowbreak{}".join(latex_escape(p, what) for p in pieces))
        else:
            out.append(latex_escape(token, what))
    return "".join(out)


def _latex_char(c: str, text: str, what: str) -> str:
    if c in _LATEX_CHARS:
        return _LATEX_CHARS[c]
    if c.isascii():
        return c
    if c in _GREEK:
        return rf"\ensuremath{{\{_GREEK[c]}}}"
    if c in _GREEK_LATIN:
        return _GREEK_LATIN[c]
    if c in _LETTERS:
        return _LETTERS[c]
    decomposed = unicodedata.normalize("NFD", c)
    letter, accent = (decomposed[0], decomposed[1]) if len(decomposed) == 2 else ("", "")
    if letter.isascii() and letter.isalpha() and accent in _ACCENTS:
        base = r"\i" if letter == "i" else letter  # dotless i under an accent
        return rf"\{_ACCENTS[decomposed[1]]}{{{base}}}"
    raise VtrbenchError(
        f"{what} {text!r}: LaTeX cannot set the character {c!r} (U+{ord(c):04X}) without extra packages; "
        "replace it (e.g. with --rename or another --caption), or use --format md"
    )


def markdown_escape(text: str) -> str:
    """Text safe inside a Markdown table cell (pipes, emphasis and HTML characters escaped, line
    breaks as spaces)."""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in _one_line(text))


def _name(text: str, names: Names, style: str) -> str:
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


NOT_AVAILABLE = "n/a"


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


def _header(metric: str, style: str, with_direction: bool = True) -> str:
    name = _metric_name(metric)
    arrow = "↑" if HIGHER_IS_BETTER[name] else "↓"
    text = metric.replace("/", " ") if with_direction else name
    return _esc(f"{text} {arrow}" if style != "tex" else f"{text}{arrow}", style)


def _diff_header(report: Report, style: str) -> str:
    return _esc(f"Δ {report.metric} vs {report.baseline_shown} [95 % CI]", style)


def _field_header(name: str, style: str) -> str:
    return _esc(FIELD_HEADERS.get(name, name), style)


def _text_columns(block: Block, style: str) -> list[str]:
    fields = [_field_header(f, style) for f in block.mean.index.names]
    if block.layout == "paper":
        return fields + ["n"] + [_header(c, style) for c in block.mean.columns]
    cols = [
        _name(block.names.get(block.col_field or "", str(c)), block.names, style) for c in block.mean.columns
    ]
    return fields + cols + ["n"]


def _decimals(block: Block, columns: Sequence[str]) -> list[int]:
    default = next(iter(block.metrics.values()))
    return [DECIMALS[_metric_name(block.metrics.get(c, default))] for c in columns]


def _text_rows(
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
            if _metric_name(block.metrics.get(c, c)) == "MdR":
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
        head = [_name(block.names.get(f, k), block.names, style) for f, k in zip(fields, key, strict=True)]
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


def _pivot_diff_rows(block: Block, style: str, columns: Sequence[str] | None = None) -> list[list[str]]:
    """Pivot Δ rows: every row with at least one difference (not the baseline)."""
    assert block.diff is not None
    cols = list(block.diff.columns) if columns is None else list(columns)
    d, lo, hi = _diff_arrays(block, cols)
    na = _na_array(block, cols)
    decs = _decimals(block, cols)
    return [
        [_name(block.names.get(block.mean.index.name or "", loc), block.names, style)]
        + [_diff_text(d[i, j], lo[i, j], hi[i, j], decs[j], style, bool(na[i, j])) for j in range(len(cols))]
        for i, loc in enumerate(block.diff.index)
        if not np.isnan(d[i]).all() or na[i].any()
    ]


def _paper(report: Report) -> bool:
    return report.layout == "paper"
