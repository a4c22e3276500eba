"""Text made safe for LaTeX and Markdown: escaping shared by every writer of the report.

The cell text itself (mean ± std, Δ, headers) is in :mod:`vtrbench.report.model`, next to the
blocks it formats.
"""

from __future__ import annotations

import re
import unicodedata

from vtrbench.errors import VtrbenchError

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
