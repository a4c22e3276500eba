"""Noun/verb token masks for CAMoE's corpus streams.

A part-of-speech tagger labels the words of a caption; the labels are carried over
to CLIP's BPE tokens by character spans in the tokenizer's cleaned text, so a word
split into several BPE pieces marks every piece. Taggers:

- ``pattern`` (default): TextBlob's bundled PatternTagger, offline. Weak on
  noun/verb-ambiguous words ("watches" is tagged as a noun).
- ``spacy``: when spaCy and an English model (``en_core_web_sm``) are installed.
- ``none``: no masks (CAMoE then needs ``--streams learned`` or ``eot``).

Datasets that know their roles (the synthetic one) bypass the tagger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vtrbench.errors import VtrbenchError
from vtrbench.registry import unknown_name_message

TAGGERS = ("pattern", "spacy", "none")
# Copulas and auxiliaries carry no action; CAMoE's action stream should not average them in.
AUXILIARIES = frozenset(
    "be is are was were been being am 's 're 'm has have had having do does did will would shall "
    "should can could may might must".split()
)

WordRoles = list[tuple[str, str]]  # (word, "noun" | "verb" | "")


def make_tagger(name: str) -> Callable[[str], WordRoles] | None:
    """Return a function caption -> [(word, role)], or None for ``none``."""
    if name == "none":
        return None
    if name == "pattern":
        try:
            from textblob.en.taggers import PatternTagger
        except ImportError:
            raise VtrbenchError(
                "the 'pattern' tagger needs textblob: pip install 'vtrbench[extract]'"
            ) from None
        tagger = PatternTagger()
        return lambda text: [(w, _role(w, t)) for w, t in tagger.tag(text)]
    if name == "spacy":
        try:
            import spacy

            nlp = spacy.load("en_core_web_sm", disable=["parser", "ner"])
        except (ImportError, OSError) as e:
            raise VtrbenchError(
                f"the 'spacy' tagger needs spaCy with the en_core_web_sm model installed ({e})"
            ) from None
        return lambda text: [(tok.text, _role(tok.text, tok.tag_)) for tok in nlp(text)]
    raise VtrbenchError(unknown_name_message("tagger", name, list(TAGGERS)))


def _role(word: str, tag: str) -> str:
    if tag.startswith("NN"):
        return "noun"
    if tag.startswith("VB") and word.lower() not in AUXILIARIES:
        return "verb"
    return ""


def token_roles(cleaned: str, bpe_spans: Sequence[tuple[int, int]], words: WordRoles) -> list[str]:
    """Role of each BPE token, given its character span in ``cleaned`` text.

    ``words`` are matched left to right (case-insensitively) in ``cleaned``; a word
    that cannot be found (the tokenizer's cleaning changed it) is skipped rather
    than guessed.
    """
    spans: list[tuple[int, int, str]] = []
    cursor = 0
    lowered = cleaned.lower()
    for word, role in words:
        w = word.lower().strip()
        if not w:
            continue
        at = lowered.find(w, cursor)
        if at < 0:
            continue
        spans.append((at, at + len(w), role))
        cursor = at + len(w)
    out = []
    for start, end in bpe_spans:
        role = ""
        for ws, we, r in spans:
            if ws < end and start < we and r:
                role = r
                break
        out.append(role)
    return out


def bpe_with_spans(tokenizer, text: str) -> tuple[str, list[int], list[tuple[int, int]]]:
    """Tokenise like open_clip's SimpleTokenizer.encode, keeping each BPE token's character span.

    Returns (cleaned text, token ids without SOT/EOT, spans). The ids equal
    ``tokenizer.encode(text)`` (checked in the tests).
    """
    cleaned = tokenizer.clean_fn(text)
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    for m in tokenizer.pat.finditer(cleaned):  # a compiled `regex` pattern
        piece = "".join(tokenizer.byte_encoder[b] for b in m.group(0).encode("utf-8"))
        for bpe_token in tokenizer.bpe(piece).split(" "):
            ids.append(tokenizer.encoder[bpe_token])
            spans.append(m.span())
    return cleaned, ids, spans
