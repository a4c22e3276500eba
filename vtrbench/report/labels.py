"""Readable row and column names for tables: short names per head/loss, the options that differ, renames.

A result's ``label`` (e.g. ``camoe[action,entity,fusion;pos;single]``) identifies its configuration
and stays in the result file and in the Markdown provenance. Tables show, by default, a short name
per head or loss (``CAMoE``, ``meanP``, ``DSL``) followed by the options that differ between the rows
of the same head in this table (``CAMoE (uniform gate)``); when that text would be long, a footnote
mark (``CAMoE^a``) with the options in a footnote instead. ``rename`` maps a full or short name to
the author's own.
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


def option_text(key: str, value: Any) -> str:
    """One option as a reader would write it: ``uniform gate``, ``aux 0.5``, ``no adapter``."""
    if isinstance(value, bool):
        words = {"adapter": "adapter", "patches": "patches"}.get(key, key)
        return words if value else f"no {words}"
    if key in ("gate", "streams"):
        return f"{value} {key[:-1] if key == 'streams' else key}"
    if key == "aux_weight":
        return f"aux {value:g}" if isinstance(value, (int, float)) else f"aux {value}"
    if key == "temperature":
        return f"τ={value:g}" if isinstance(value, (int, float)) else f"τ={value}"
    if key in ("layers", "heads"):
        return f"{value} {key}"
    if key == "experts":
        return "experts " + str(value).replace(",", ", ")
    return f"{key}={value}"


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
        for value in values:
            raw = {k: first.loc[first[value_field] == value, f"{prefix}{k}"].iloc[0] for k in differing}
            text = ", ".join(option_text(k, _typed(v)) for k, v in raw.items() if not pd.isna(v))
            if not text:
                names[value] = value
            elif len(text) <= MAX_INLINE:
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
    opts = [o.partition("=") for o in rest[:-1].split(",")]
    text = ", ".join(option_text(k, _typed(v)) for k, _, v in opts)
    return f"{LOSS_NAMES.get(base, base)} ({text})"


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
        names.fields["loss"] = {v: _loss_name(v) for v in losses}
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
