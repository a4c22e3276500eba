"""The caption loop of extraction: tokenize, tag nouns and verbs, encode per-token features, one
part file per chunk of captions; and the part-of-speech coverage recorded in the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from vtrbench.cache import FeatureCache, Manifest, part_identity, part_path, write_part
from vtrbench.config import ExtractConfig
from vtrbench.datasets.base import DatasetIndex

# called through the module, so that a test or benchmark that replaces encode.encode_tokens reaches it
from vtrbench.extract import encode
from vtrbench.extract.options import RunOptions
from vtrbench.extract.progress import progress_bar, refuse_nonfinite
from vtrbench.extract.tagging import make_tagger


def run_texts(
    clip: Any,
    manifest: Manifest,
    index: DatasetIndex,
    config: ExtractConfig,
    output: Path,
    chunks: list[int],
    opts: RunOptions,
    console: Any,
) -> None:
    """Tag, tokenize and encode the captions of ``chunks``; one part file per chunk."""
    if not chunks:
        return
    tagger = make_tagger(config.tagger)
    device = torch.device(opts.device)
    ranges = manifest.chunks("texts")
    L, D = config.max_words, clip.embed_dim
    with progress_bar(opts.progress, console) as progress:
        total = sum(ranges[k][1] - ranges[k][0] for k in chunks)
        task = progress.add_task("captions", total=total, info="", unit="captions")
        for k in chunks:
            start, end = ranges[k]
            entries = index.texts[start:end]
            roles = []
            for t in entries:
                if t.roles is not None:
                    roles.append(list(zip(t.caption.split(), t.roles, strict=False)))
                else:
                    roles.append(tagger(t.caption) if tagger else None)
            tok = encode.tokenize(clip, [t.caption for t in entries], L, roles)
            feats = np.zeros((end - start, L, D), dtype=np.float16)
            for s in range(0, end - start, opts.text_batch_size):
                e = min(s + opts.text_batch_size, end - start)
                ids = torch.from_numpy(tok.token_ids[s:e]).to(device)
                eot = torch.from_numpy(tok.eot[s:e].astype(np.int64)).to(device)
                out = encode.encode_tokens(clip, ids, eot).cpu().numpy().astype(np.float16)
                feats[s:e, : out.shape[1]] = out
                progress.update(task, advance=e - s)
            bad = np.flatnonzero(~np.isfinite(feats).reshape(len(feats), -1).all(axis=1))
            refuse_nonfinite(bad, start, None, "caption row", config)
            arrays = {
                "tokens": feats,
                "token_ids": tok.token_ids,
                "token_mask": tok.token_mask,
                "eot": tok.eot,
            }
            if tagger is not None or any(r is not None for r in roles):
                arrays["noun_mask"] = tok.noun_mask
                arrays["verb_mask"] = tok.verb_mask
                arrays["verb_source"] = stream_sources(roles, entries, tok.verb_mask, "verb")
                arrays["noun_source"] = stream_sources(roles, entries, tok.noun_mask, "noun")
            write_part(part_path(output, "texts", k), arrays, part_identity(manifest, "texts", k))


def stream_sources(roles: list[Any], entries: list[Any], mask: np.ndarray, kind: str) -> np.ndarray:
    """Per caption how its verb (noun) stream was found: tagged / rule / known / sentence.

    "sentence" whenever no token is marked (also when the only marked word fell past
    ``max_words``): the head then uses the whole sentence for that stream.
    """
    out = np.array(["sentence"] * len(entries), dtype=object)
    for i, (r, t) in enumerate(zip(roles, entries, strict=True)):
        if mask[i].any():
            out[i] = "known" if t.roles is not None else getattr(r, f"{kind}_source", "tagged")
    return out


def pos_coverage(output: Path, manifest: Manifest, reuse: Path | None = None) -> dict[str, Any]:
    """Cache attributes: the share of captions whose verb / noun stream is empty (falls back to the
    sentence), and the share found by caption rules; empty when the cache has no masks. With
    ``reuse`` (--retry-failed: captions are not re-encoded) they are the reused cache's."""
    if reuse is not None:
        with FeatureCache(reuse) as cache:
            return {k: v for k, v in cache.attrs.items() if k.startswith("pos_")}

    n = no_verb = no_noun = by_rule = 0
    for k, _ in enumerate(manifest.chunks("texts")):
        with h5py.File(part_path(output, "texts", k), "r") as f:
            if "verb_mask" not in f:
                return {}
            verb, noun = f["verb_mask"][:], f["noun_mask"][:]
            n += len(verb)
            no_verb += int((~verb.any(axis=1)).sum())
            no_noun += int((~noun.any(axis=1)).sum())
            if "verb_source" in f:
                by_rule += int((f["verb_source"].asstr()[:] == "rule").sum())
    if n == 0:
        return {}
    return {
        "pos_no_verb_share": no_verb / n,
        "pos_no_noun_share": no_noun / n,
        "pos_verb_by_rule_share": by_rule / n,
        "pos_coverage": (
            f"no verb {100 * no_verb / n:.1f} % ({no_verb} of {n}), no noun {100 * no_noun / n:.1f} % "
            f"({no_noun}); verb found by caption rules {100 * by_rule / n:.1f} %"
        ),
    }
