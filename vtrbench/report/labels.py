"""Readable row and column names for tables: short names per head/loss, the options that differ, renames.

A result's ``label`` (e.g. ``camoe[action,entity,fusion;pos;single]``) identifies its configuration
and stays in the result file and in the Markdown provenance. Tables show, by default, a short name
per head or loss (``CAMoE``, ``meanP``, ``DSL``) followed by the options that differ between the rows
of the same head in this table (``CAMoE (uniform gate)``); when that text would be long, a footnote
mark (``CAMoE^a``) with the options in a footnote instead (always for a tuned row, whose name already
holds "(tuned, N trials)"). Option values print with 3 significant digits (:func:`number_text`), more
only where 3 would make two rows read the same. ``rename`` maps a full or short name to the author's
own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vtrbench.errors import VtrbenchError
from vtrbench.runs.tune.notes import TUNED_LABEL

LABEL_STYLES = ("short", "full")
HEAD_NAMES = {"zeroshot": "Zero-shot", "meanp": "meanP", "seqtransf": "seqTransf", "camoe": "CAMoE"}
LOSS_NAMES = {"infonce": "InfoNCE", "dsl": "DSL", "triplet": "Triplet", "none": "—"}
# Longer option text moves to a footnote so that the name column stays narrow in LaTeX.
MAX_INLINE = 24
MARKS = "abcdefghijklmnopqrstuvwxyz"
# Option values in names and footnotes: 3 significant digits, the precision of a table cell (62.5),
# more only where two rows would otherwise read the same (see distinct_texts).
SIGNIFICANT = 3


def number_text(value: float, digits: int = SIGNIFICANT) -> str:
    """A number as a name or footnote prints it: whole numbers as they are, others to ``digits``
    significant digits; a rounded value keeps its trailing zeros so that it does not read as a whole
    one (29.689905586686095 -> ``29.7``, 18.03325530911417 -> ``18.0``, 0.5 -> ``0.5``,
    0.7710321945 -> ``0.771``, 0.000316227766 -> ``0.000316``, 1.5e-05 -> ``1.5e-5``, 123456.7 ->
    ``1.23e5``)."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    exact = f"{value:.{digits}g}"
    text = exact if float(exact) == value else f"{value:#.{digits}g}"
    mantissa, e, exponent = text.partition("e")
    mantissa = mantissa.rstrip(".")  # '#' keeps the point of 123. too
    return f"{mantissa}e{int(exponent)}" if e else mantissa


def option_text(key: str, value: Any, digits: int = SIGNIFICANT) -> str:
    """One option as a reader would write it: ``uniform gate``, ``aux 0.5``, ``no adapter``; a float
    to ``digits`` significant digits (see :func:`number_text`)."""
    if isinstance(value, bool):
        words = {"adapter": "adapter", "patches": "patches"}.get(key, key)
        return words if value else f"no {words}"
    shown = number_text(value, digits) if isinstance(value, (int, float)) else str(value)
    if key in ("gate", "streams"):
        return f"{value} {key[:-1] if key == 'streams' else key}"
    if key == "aux_weight":
        return f"aux {shown}"
    if key == "temperature":
        return f"τ={shown}"
    if key in ("layers", "heads"):
        return f"{shown} {key}"
    if key == "experts":
        return "experts " + str(value).replace(",", ", ")
    return f"{key}={shown}"


def options_text(options: Mapping[str, Any], digits: int = SIGNIFICANT) -> str:
    """Several options, comma-separated (:func:`option_text` each)."""
    return ", ".join(option_text(k, v, digits) for k, v in options.items())


def distinct_texts(options: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """{name: options text} with as few significant digits as keep two different sets of options
    apart (3 unless two rows would read the same at 3: then 4, 5, ... up to 17, float64's all)."""
    texts: dict[str, str] = {}
    for digits in range(SIGNIFICANT, 18):
        texts = {name: options_text(opts, digits) for name, opts in options.items()}
        by_text: dict[str, set[str]] = {}
        for name, text in texts.items():
            by_text.setdefault(text, set()).add(repr(sorted(options[name].items(), key=str)))
        if all(len(kinds) == 1 for kinds in by_text.values()):
            break
    return texts


@dataclass
class Names:
    """Display names per field value (``label``, ``loss``, ``head``) and the footnotes they need."""

    fields: dict[str, dict[str, str]] = field(default_factory=dict)
    footnotes: list[str] = field(default_factory=list)
    full: dict[str, str] = field(default_factory=dict)  # display name -> full label, for provenance
    marks: dict[str, tuple[str, str]] = field(default_factory=dict)  # "CAMoE^a" -> ("CAMoE", "a")

    def get(self, field_name: str, value: str) -> str:
        return self.fields.get(field_name, {}).get(value, value)


def read_renames(
    pairs: list[str] | tuple[str, ...] = (), files: list[Path] | tuple[Path, ...] = ()
) -> dict[str, str]:
    """``old=new`` strings and mapping files (a JSON object, or one ``old=new`` per line) -> dict."""
    out: dict[str, str] = {}
    for path in files:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise VtrbenchError(f"--rename-file {path}: cannot read it ({e})") from None
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as e:
                raise VtrbenchError(f"--rename-file {path}: not a JSON object of names ({e})") from None
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise VtrbenchError(f"--rename-file {path}: must map names to names (strings)")
            out.update({str(k): v for k, v in data.items()})
        else:
            for i, line in enumerate(text.splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    out.update(_pair(line, f"--rename-file {path} line {i}"))
    for pair in pairs:
        out.update(_pair(pair, f"--rename {pair!r}"))
    return out


def _pair(text: str, where: str) -> dict[str, str]:
    old, sep, new = text.partition("=")
    # A label may itself hold '=' (aux=0.5): the last '=' separates the new name.
    if sep and "=" in new:
        old, _, new = text.rpartition("=")
    if not sep or not old.strip() or not new.strip():
        raise VtrbenchError(f"{where}: expected old=new")
    return {old.strip(): new.strip()}


def _options(rows: pd.DataFrame, prefix: str) -> list[dict[str, str]]:
    cols = [c for c in rows.columns if c.startswith(prefix)]
    return [
        {c[len(prefix) :]: str(v) for c, v in zip(cols, values, strict=True) if not pd.isna(v)}
        for values in rows[cols].itertuples(index=False)
    ]


def _short_names(
    frame: pd.DataFrame, value_field: str, group_field: str, prefix: str, base: dict[str, str]
) -> tuple[dict[str, str], dict[str, str], dict[str, tuple[str, str]]]:
    """{value: short name} for the values of ``value_field``, grouped by ``group_field``; plus the
    footnote text of each mark used."""
    names: dict[str, str] = {}
    notes: dict[str, str] = {}
    marks: dict[str, tuple[str, str]] = {}
    for group, rows in frame.groupby(group_field, sort=False, dropna=False):
        first = rows.drop_duplicates(value_field)
        values = [str(v) for v in first[value_field]]
        head = base.get(str(group), str(group))
        if len(values) == 1:
            names[values[0]] = head
            continue
        options = _options(first, prefix)
        keys = sorted({k for o in options for k in o})
        differing = [k for k in keys if len({o.get(k) for o in options}) > 1]
        raw: dict[str, dict[str, Any]] = {}
        for value in values:
            row = {k: first.loc[first[value_field] == value, f"{prefix}{k}"].iloc[0] for k in differing}
            raw[value] = {k: _typed(v) for k, v in row.items() if not pd.isna(v)}
        texts = distinct_texts(raw)
        # A tuned row's name already holds "(tuned, N trials)": its options go to a footnote.
        inline = MAX_INLINE if not TUNED_LABEL.search(head) else 0
        for value in values:
            text = texts[value]
            if not text:
                names[value] = value
            elif len(text) <= inline:
                names[value] = f"{head} ({text})"
            else:
                mark = MARKS[len(notes) % len(MARKS)]
                notes[mark] = f"{head} with {text}"
                names[value] = f"{head}^{mark}"
                marks[names[value]] = (head, mark)
    # Two different configurations must never share a name: fall back to the full label for them.
    seen: dict[str, list[str]] = {}
    for value, name in names.items():
        seen.setdefault(name, []).append(value)
    for same in seen.values():
        if len(same) > 1:
            for v in same:
                names[v] = v
    return names, notes, marks


def _typed(value: Any) -> Any:
    """Option values as the frame holds them (text, or floats where other rows lack the option)
    back to bool/int/float where they read so."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value in ("True", "False"):
        return value == "True"
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".e") else int(value)
        except ValueError:
            return value
    return value


def _loss_name(value: str) -> str:
    """``dsl`` -> ``DSL``; a loss variant ``dsl[temperature=10]`` (see blocks.loss_variants) ->
    ``DSL (τ=10)``."""
    base, bracket, rest = value.partition("[")
    if not bracket or not rest.endswith("]"):
        return LOSS_NAMES.get(value, value)
    return f"{LOSS_NAMES.get(base, base)} ({options_text(_loss_options(rest[:-1]))})"


def _loss_options(rest: str) -> dict[str, Any]:
    return {k: _typed(v) for k, _, v in (o.partition("=") for o in rest.split(","))}


def _loss_names(losses: list[str]) -> dict[str, str]:
    """Every loss's shown name; variants of one loss with as many digits as keep them apart."""
    names = {v: _loss_name(v) for v in losses}
    variants: dict[str, dict[str, dict[str, Any]]] = {}
    for v in losses:
        base, bracket, rest = v.partition("[")
        if bracket and rest.endswith("]"):
            variants.setdefault(base, {})[v] = _loss_options(rest[:-1])
    for base, found in variants.items():
        for v, text in distinct_texts(found).items():
            names[v] = f"{LOSS_NAMES.get(base, base)} ({text})"
    return names


def make_names(
    frame: pd.DataFrame, *, style: str = "short", rename: Mapping[str, str] | None = None
) -> Names:
    """Display names for one table's rows (``frame``: :func:`results_frame` rows of that table)."""
    if style not in LABEL_STYLES:
        raise VtrbenchError(f"unknown label style {style!r}; use one of {', '.join(LABEL_STYLES)}")
    names = Names()
    labels = sorted({str(v) for v in frame["label"]})
    losses = sorted({str(v) for v in frame["loss"]})
    heads = sorted({str(v) for v in frame["head"]})
    if style == "short":
        # tuned rows (vtrbench tune) are named apart from the default recipe's: "CAMoE (tuned, 40 trials)"
        tuned = frame["label"].astype(str).str.extract(f"({TUNED_LABEL.pattern})")[0].fillna("")
        grouped = frame.assign(head=frame["head"].astype(str) + tuned)
        heads_tuned = zip(frame["head"].astype(str), tuned, strict=True)
        bases = {h + t: HEAD_NAMES.get(h, h) + t for h, t in heads_tuned}
        label_names, notes, names.marks = _short_names(grouped, "label", "head", "head_options.", bases)
        names.fields["label"] = label_names
        names.fields["loss"] = _loss_names(losses)
        names.fields["head"] = {v: HEAD_NAMES.get(v, v) for v in heads}
        names.footnotes = [f"{mark}: {text}" for mark, text in notes.items()]
    else:
        names.fields = {"label": {v: v for v in labels}, "loss": {v: v for v in losses}, "head": {}}
    for old, new in (rename or {}).items():
        if not isinstance(new, str) or not new.strip() or not str(old).strip():
            raise VtrbenchError(f"rename {old!r} -> {new!r}: a name must be non-blank text")
    if rename:
        unused = dict(rename)
        for mapping in names.fields.values():
            for value, shown in list(mapping.items()):
                for key in (value, shown):
                    if key in rename:
                        mapping[value] = " ".join(rename[key].split())
                        unused.pop(key, None)
                        break
        if unused:
            known = sorted({x for m in names.fields.values() for kv in m.items() for x in kv})
            old = next(iter(unused))
            raise VtrbenchError(
                f"--rename {old!r}: no label, loss or head of this table is named so; "
                f"names: {', '.join(known)}"
            )
    names.full = {names.get("label", v): v for v in labels if names.get("label", v) != v}
    return names
