"""Noun/verb token masks for CAMoE's corpus streams.

A part-of-speech tagger labels the words of a caption; the labels are carried over
to CLIP's BPE tokens by character spans in the tokenizer's cleaned text, so a word
split into several BPE pieces marks every piece. Taggers:

- ``pattern`` (default): TextBlob's bundled PatternTagger, offline. Weak on
  noun/verb-ambiguous words ("watches", "hits" and "talks" are tagged as plural nouns).
- ``spacy``: when spaCy and an English model (``en_core_web_sm``) are installed.
- ``none``: no masks (CAMoE then needs ``--streams learned`` or ``eot``).

When the tagger finds no verb, rules for caption grammar ("subject verbs object",
:func:`caption_rules`) look for the one it missed; how each caption's verb and noun
streams were found is kept (:data:`SOURCES`) and stored in the cache.

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

# How a caption's verb (noun) stream was found: by the tagger, by a caption rule, given by
# the dataset, or not at all (the head then falls back to the whole sentence).
SOURCES = ("tagged", "rule", "known", "sentence")

# Words a rule may mark as the caption's verb must follow the subject and precede one of these
# (an object's determiner, a pronoun, a preposition or particle, an adverb, "and") or end it.
_FUNCTION_TAGS = ("DT", "PRP", "PRP$", "IN", "RP", "TO", "RB", "CC", "WRB", "EX", "PDT")
_SUBJECT_TAGS = ("NN", "NNP", "NNS", "NNPS", "PRP")


class TaggedWords(list):  # type: ignore[type-arg]
    """[(word, role)] plus how the verb and noun streams were found (see :data:`SOURCES`)."""

    verb_source: str = "sentence"
    noun_source: str = "sentence"


def caption_rules(tagged: list[tuple[str, str]], lexicon: dict[str, str] | None = None) -> TaggedWords:
    """Roles for PTB-tagged words, with caption-grammar rules when the tags give no verb.

    Rules, tried only if no word is tagged as a (non-auxiliary) verb, in this order:

    1. ``-s`` verb after its subject: a word tagged as a plural noun, ending in "s", right after a
       noun or pronoun (or after "and" once a verb was found), that is followed by a function
       word or ends the caption ("a man talks about cars", "a woman jumps over a bar and
       attacks a man"); or followed by a noun when its stem is a verb in the lexicon
       ("baseball player hits ball");
    2. base-form verb after a plural subject, before a function word, when the lexicon has
       a verb sense of it ("people act in a comedy program");
    3. ``-ing`` word after a form of "be" ("men are loading their guns", tried first), a noun,
       pronoun or "and" ("a girl shopping"), or a preposition when an object follows ("a video
       on painting your nails");
    4. the main verb is an auxiliary when it is the only verb: the last one is kept ("a
       little girl does gymnastics", "a family is having a conversation", "this is a video").

    ``lexicon`` maps words to their most frequent tag (TextBlob's); without it, rules 1 and 2
    need a following function word and rule 2 is skipped.
    """
    roles = [_role(w, t) for w, t in tagged]
    out = TaggedWords()
    verb_source = "tagged" if "verb" in roles else "sentence"
    if verb_source == "sentence":
        found = _apply_rules(tagged, roles, lexicon or {})
        if found:
            verb_source = "rule"
    out.extend(zip((w for w, _ in tagged), roles, strict=True))
    out.verb_source = verb_source
    out.noun_source = "tagged" if "noun" in roles else "sentence"
    return out


def _verb_evidence(word: str, lexicon: dict[str, str]) -> bool:
    """The lexicon knows a verb form of ``word``'s stem (stem, stem+ing, stem+ed)."""
    w = word.lower()
    stems = {w}
    if w.endswith("s") and not w.endswith("ss"):
        stems |= {w[:-1], w[:-2] if w.endswith("es") else w[:-1]}
        if w.endswith("ies"):
            stems.add(w[:-3] + "y")
    for stem in stems:
        if lexicon.get(stem, "").startswith("VB"):
            return True
        for base in {stem, stem[:-1] if stem.endswith("e") else stem}:
            if lexicon.get(base + "ing") == "VBG" or lexicon.get(base + "ed") in ("VBD", "VBN"):
                return True
    return False


def _apply_rules(tagged: list[tuple[str, str]], roles: list[str], lexicon: dict[str, str]) -> bool:
    n = len(tagged)
    tags = [t for _, t in tagged]
    words = [w.lower() for w, _ in tagged]
    be = ("is", "are", "was", "were", "be", "being", "am")

    def next_is_function(i: int) -> bool:
        return i + 1 >= n or tags[i + 1] in _FUNCTION_TAGS

    def simple_subject(i: int) -> bool:
        # words 0..i-1 are one plain noun phrase ("a young man", "two people"): then a verb
        # may take a bare object noun or adjective ("a man cooks burgers")
        return all(t in ("DT", "JJ", "CD", "PRP$") or t.startswith("NN") for t in tags[:i])

    def strong(w: str) -> bool:  # the stem itself is a verb in the lexicon
        stems = {w, w[:-1], w[:-2] if w.endswith("es") else w[:-1]}
        return any(lexicon.get(x, "").startswith("VB") for x in stems)

    def verb_here(i: int, w: str) -> bool:
        # "clips of football" is a noun phrase; "pictures that have ..." a relative clause
        if i + 1 < n and words[i + 1] in ("of", "that", "which", "who"):
            return False
        if not (_verb_evidence(w, lexicon) if lexicon else True):
            return False
        if i + 1 >= n:
            return strong(w) if lexicon else True
        if tags[i + 1] in _FUNCTION_TAGS:
            return True
        return simple_subject(i) and tags[i + 1][:2] in ("NN", "JJ", "CD")

    found = False
    # rule 3a: "-ing" right after a form of "be" ("men are loading their guns")
    for i in range(1, n):
        if words[i].endswith("ing") and len(words[i]) > 4 and words[i - 1] in be:
            roles[i] = "verb"
            found = True
    if found:
        return True
    for i in range(1, n):  # rule 1: "-s" verb after its subject
        w, t = words[i], tags[i]
        if not (t == "NNS" and w.endswith("s") and not w.endswith("ss")):
            continue
        coordinated = tags[i - 1] == "CC" and found
        if found and not coordinated:
            continue
        after_subject = tags[i - 1] in _SUBJECT_TAGS or (
            tags[i - 1] == "JJ" and i >= 2 and tags[i - 2] == "IN"
        )
        if (
            (after_subject or coordinated)
            and not any(x.startswith("VB") for x in tags[:i])
            and verb_here(i, w)
        ):
            roles[i] = "verb"
            found = True
    if found:
        return True
    if lexicon:  # rule 2: base form after a plural subject
        for i in range(1, n):
            if tags[i] in ("NN", "VB", "VBP", "JJ") and tags[i - 1] in ("NNS", "NNPS"):
                if not any(x.startswith("VB") for x in tags[:i]) and verb_here(i, words[i]):
                    roles[i] = "verb"
                    return True
    for i in range(1, n):  # rule 3b: "-ing" after a noun, pronoun or "and"; 3c: after a preposition
        if not (words[i].endswith("ing") and len(words[i]) > 4 and tags[i] in ("NN", "NNS", "JJ", "VBG")):
            continue
        nxt = tags[i + 1] if i + 1 < n else ""
        if tags[i - 1] in _SUBJECT_TAGS or tags[i - 1] == "CC":
            # before a bare noun only after a plain "a man": "foreign language cooking show" is a compound
            if nxt[:2] != "NN" or i == 1 or tags[i - 2] in ("DT", "CD"):
                roles[i] = "verb"
                found = True
        elif tags[i - 1] == "IN" and nxt in ("DT", "PRP$", "PRP"):
            roles[i] = "verb"  # a gerund with its own object: "a video on painting your nails"
            found = True
    if found:
        return True
    for i in range(n - 1, -1, -1):  # rule 4: the only verb is an auxiliary: keep the last one
        if tags[i].startswith("VB"):
            roles[i] = "verb"
            return True
    return False


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
        lexicon = _textblob_lexicon()
        return lambda text: caption_rules(tagger.tag(text), lexicon)
    if name == "spacy":
        try:
            import spacy

            nlp = spacy.load("en_core_web_sm", disable=["parser", "ner"])
        except (ImportError, OSError) as e:
            raise VtrbenchError(
                f"the 'spacy' tagger needs spaCy with the en_core_web_sm model installed ({e})"
            ) from None
        lexicon = _textblob_lexicon()
        return lambda text: caption_rules([(tok.text, tok.tag_) for tok in nlp(text)], lexicon)
    raise VtrbenchError(unknown_name_message("tagger", name, list(TAGGERS)))


def _textblob_lexicon() -> dict[str, str] | None:
    try:
        from textblob.en import lexicon
    except ImportError:
        return None
    return lexicon  # type: ignore[no-any-return]


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
