"""What a stored string (video id, caption, split name) may contain.

Family layer (datasets/): imports only the ground. ``datasets.base`` (the records) and
``datasets._formats`` (the readers) both check text here, without importing each other back.
"""

from __future__ import annotations

import re
from pathlib import Path

from vtrbench.errors import AnnotationError

# Control characters other than tab, line feed, vertical tab, form feed and carriage
# return (which the tokenizer treats as spaces), and lone surrogates (a JSON "\\ud800"
# decodes to one; it cannot be written as UTF-8).
BAD_CHARS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


# The same characters written as JSON escapes ("\\u0000"): raw ones are rare in JSON,
# so the raw text is searched first and the parsed structure walked only on a hit.
BAD_ESCAPE = re.compile(
    r"\\u(?:000[0-8]|000[eEfF]|001[0-9a-fA-F]|007[fF]|00[89][0-9a-fA-F]|[dD][89a-fA-F][0-9a-fA-F]{2})"
)


def bad_char(text: str) -> str | None:
    """What is wrong with ``text`` as a stored string, or None."""
    bad = BAD_CHARS.search(text)
    if bad is None:
        return None
    code = ord(bad.group())
    if code == 0:
        name = "a NUL byte"
    elif 0xD800 <= code <= 0xDFFF:
        name = f"a lone surrogate U+{code:04X} (not valid Unicode)"
    else:
        name = f"the control character U+{code:04X}"
    return f"contains {name} at character {bad.start()}"


def check_text(text: str, path: Path | str, where: str, what: str = "caption") -> str:
    """``text`` stripped; an error naming ``path``/``where`` when it is empty or holds characters
    that cannot be stored or tokenised (NUL and other control characters, lone surrogates).

    Tabs and line breaks are whitespace to the tokenizer and are kept (real ActivityNet
    sentences contain newlines).
    """
    stripped = text.strip()
    if not stripped:
        raise AnnotationError(f"{path}: {where}: empty {what}")
    problem = bad_char(stripped)
    if problem is not None:
        raise AnnotationError(f"{path}: {where}: {what} {problem}")
    return stripped
