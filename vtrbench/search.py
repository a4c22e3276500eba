"""``vtrbench search``: free-text retrieval over a feature cache.

A query is encoded with the CLIP text tower the cache was extracted with (model and weights are
in the cache's attributes), tokenised, truncated and POS-tagged by the same code as extraction
(:func:`vtrbench.extract.encode.tokenize`, :func:`vtrbench.extract.tagging.make_tagger`), and
its token features are rounded to float16 as the cache stores them. The head (``zeroshot``
without a checkpoint) then scores it against the gallery exactly as evaluation scores a cached
caption: a test caption typed as free text gets the scores and rank that its result file holds,
up to float16 rounding of features computed in another batch (tests/report/test_search.py).

Before any query is scored the rebuilt text tower is checked against the cache: a stored caption
is tokenised and encoded again and must give the stored token ids and features; a different
checkpoint under the same path, or another tokenizer, is refused instead of ranking silently wrong.

Long queries: like extraction (CLIP4Clip's rule) a query is cut to the cache's ``max_words``
tokens (SOT and EOT included); each result says so (``truncated``, ``n_tokens``). A query of
more than :data:`MAX_QUERY_CHARS` characters is refused: it is a file or paste mistake, and
almost all of it would be cut off unseen.

This module and extraction are the only ones that load open_clip.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtrbench.cache import STATUS_OK, FeatureCache
from vtrbench.errors import CacheError, VtrbenchError
from vtrbench.extract.encode import encode_tokens, load_clip, tokenize
from vtrbench.extract.hub import WeightsUnavailable
from vtrbench.extract.tagging import bpe_with_spans, make_tagger
from vtrbench.extract.text_tower import load_tower, save_tower, tower_path
from vtrbench.extract.texts import stream_sources
from vtrbench.factory import create_head
from vtrbench.heads.base import PairwiseHead
from vtrbench.runs.data import SplitData, take
from vtrbench.runs.record import load_checkpoint
from vtrbench.runs.scoring import embed, states
from vtrbench.runs.train import check_requirements

MAX_QUERY_CHARS = 1000
# The re-encoded check caption must match the stored features this closely (cosine of the EOT
# feature). Same weights give > 0.9999 (fp16 storage, other batch shapes, fp16 autocast on CUDA at
# extraction); other weights of the same architecture give ~0 (random) to ~0.9 (fine-tuned).
CHECK_MIN_COSINE = 0.999


@dataclass
class SearchHit:
    rank: int  # 1-based position in the ranking (ties broken by gallery order)
    video: str  # video id
    score: float  # the head's similarity (cosine scale; higher is better)
    path: str  # the video file recorded in the cache
    row: int  # row in the cache's /videos
    captions: list[str] = field(default_factory=list)  # the video's captions in the cache (all of them)


@dataclass
class QueryResult:
    query: str
    hits: list[SearchHit]
    n_tokens: int  # BPE tokens of the query, SOT and EOT included, before truncation
    truncated: bool  # the query was cut to the cache's max_words tokens
    verb_source: str  # how the verb stream was found (tagged / rule / sentence), see tagging.SOURCES
    noun_source: str
    gate: dict[str, float] | None = None  # CAMoE's per-expert weights for this query
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # (n_gallery,) all scores

    def to_rows(self) -> list[dict[str, Any]]:
        """The JSON objects ``--json`` prints: one per hit."""
        out = []
        for h in self.hits:
            row: dict[str, Any] = {
                "rank": h.rank,
                "video": h.video,
                "score": round(h.score, 6),
                "path": h.path,
                "captions": list(h.captions),
                "query": self.query,
                "truncated": self.truncated,
            }
            if self.gate is not None:
                row["gate"] = {k: round(v, 6) for k, v in self.gate.items()}
            out.append(row)
        return out


@dataclass
class SearchOutcome:
    results: list[QueryResult]
    head: str  # the scoring head's label
    gallery: str  # split name, or "all" (every video that decoded)
    n_gallery: int
    max_words: int
    clip: str  # model/weights used for the queries
    random_weights: bool = False  # the cache was extracted with random CLIP weights (--pretrained none)
    text_tower: str = "open_clip"  # how the query encoder was built: "open_clip" or "kept copy PATH"
    note: str = ""  # what happened to the kept copy of the text tower (written, not written and why)


def read_queries(path: Path) -> list[str]:
    """One query per line; blank lines and lines starting with ``#`` are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VtrbenchError(f"queries file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VtrbenchError(f"cannot read queries file {path}: {e}") from None
    # normalised before the comment test: a file's byte-order mark must not hide its first line's "#"
    queries = [normalise_query(line) for line in text.splitlines()]
    queries = [q for q in queries if q and not q.startswith("#")]
    if not queries:
        raise VtrbenchError(f"queries file {path} holds no query (one per line)")
    return queries


def normalise_query(text: str) -> str:
    """A query as it is encoded, shown and recorded, the same from the command line, a ``--queries``
    file and :func:`vtrbench.api.search`: every U+FEFF removed (a byte-order mark that an editor put
    at the start of a file, or a zero-width no-break space pasted with the text: invisible either
    way, yet CLIP's tokenizer reads it as a token), and all whitespace (CR, LF, CRLF, tabs, runs of
    spaces) one space, stripped at both ends. No Unicode normalisation (NFC/NFKC): a query pasted
    from a cached caption must reach the tokenizer with the caption's own code points. Other control
    characters stay in the query (the tokenizer sees what was typed) and are escaped wherever the
    query is printed (``vtrbench.io.printable``)."""
    return " ".join(text.replace("\ufeff", "").split())


def check_queries(queries: list[str]) -> list[str]:
    """Refuse empty and over-long queries, naming the one at fault; each :func:`normalise_query`'d."""
    if not queries:
        raise VtrbenchError("no query given: pass a text or --queries FILE")
    out = []
    for i, q in enumerate(queries):
        where = f"query {i + 1}" if len(queries) > 1 else "the query"
        if not isinstance(q, str):
            raise VtrbenchError(f"{where} is not text ({type(q).__name__})")
        q = normalise_query(q)
        if not q:
            raise VtrbenchError(f"{where} is empty")
        if len(q) > MAX_QUERY_CHARS:
            raise VtrbenchError(
                f"{where} has {len(q)} characters; at most {MAX_QUERY_CHARS} are accepted "
                "(CLIP reads at most 77 tokens, the cache's max_words fewer): shorten it"
            )
        out.append(q)
    return out


def search(
    cache: str | Path,
    queries: list[str],
    *,
    checkpoint: str | Path | None = None,
    k: int = 10,
    split: str | None = None,
    device: str = "cpu",
    clip_weights: str | None = None,
    roles: Sequence[Sequence[str] | None] | None = None,
) -> SearchOutcome:
    """Rank the cache's videos for each free-text query.

    ``split``: the gallery is that split's videos (as ``eval`` ranks them); None: every video of
    the cache that decoded. ``checkpoint``: a head saved by ``vtrbench train --save-checkpoint``
    on this cache; None scores with ``zeroshot``. ``clip_weights`` replaces the weights the cache
    recorded (a checkpoint file that moved); it must reproduce the cache's caption features.
    ``roles`` (one per query, or None): the noun/verb role of each whitespace-separated word, as a
    dataset that knows them gives them to extraction (the synthetic one); by default the cache's
    tagger labels the words.
    """
    queries = check_queries(list(queries))
    if roles is not None and len(roles) != len(queries):
        raise VtrbenchError(f"roles: {len(roles)} entries for {len(queries)} queries")
    if k < 1:
        raise VtrbenchError(f"-k must be at least 1, got {k}")
    cache_path = Path(cache)
    with FeatureCache(cache_path) as fc:
        attrs = fc.attrs
        rows = _gallery_rows(fc, split)
        head, head_name = _head(fc, checkpoint, cache_path)
        clip, tower, note = _text_tower(fc, attrs, clip_weights, device)
        want_patches = "patches" in head.requires
        video = {
            key: torch.from_numpy(fc.read_rows("videos", key, rows))
            for key in ("frames", "frame_mask", "patches")
            if key in fc.file["videos"] and (key != "patches" or want_patches)
        }
        ids = fc.read_strings("videos", "id")
        paths = fc.read_strings("videos", "path")
        # the tagger (TextBlob: ~2 s to import) only for a head that reads the noun/verb streams
        has_masks = "noun_mask" in fc.file["texts"] and bool({"noun_mask", "verb_mask"} & set(head.requires))
        text, info = _encode_queries(clip, queries, attrs, has_masks, device, roles)
        data = SplitData(
            split or "all",
            video,
            text,
            torch.zeros(len(queries), dtype=torch.long),
            rows,
            np.arange(len(queries)),
        )
        sim = _score(head, data, device)
        gates = _gates(head, text, device)
        results = []
        for i, q in enumerate(queries):
            scores = sim[i].numpy()
            # stable sort on -score: equal scores keep gallery order (what a reader expects to see)
            order = np.argsort(-scores, kind="stable")[:k]
            hits = [
                SearchHit(r + 1, ids[rows[j]], float(scores[j]), paths[rows[j]], int(rows[j]))
                for r, j in enumerate(order)
            ]
            gate = None if gates is None else {e: float(w[i]) for e, w in gates.items()}
            results.append(QueryResult(query=q, hits=hits, gate=gate, scores=scores, **info[i]))
        captions = video_captions(fc, [h.row for r in results for h in r.hits])
    for r in results:
        for h in r.hits:
            h.captions = captions.get(h.row, [])
    label = getattr(head, "label", None)
    return SearchOutcome(
        results=results,
        head=label() if callable(label) else head_name,
        gallery=split or "all",
        n_gallery=len(rows),
        max_words=int(attrs["max_words"]),
        clip=f"{attrs.get('model')}/{clip_weights or attrs.get('pretrained')}",
        random_weights=bool(attrs.get("random_weights", False)),
        text_tower=tower,
        note=note,
    )


def _head(fc: FeatureCache, checkpoint: str | Path | None, cache_path: Path) -> tuple[Any, str]:
    """(the scoring head, its name): a checkpoint's head trained on this cache, or zeroshot."""
    attrs = fc.attrs
    if checkpoint is not None:
        head, ckpt = load_checkpoint(Path(checkpoint))
        trained_on = str(ckpt["config"].get("cache_hash", ""))
        if trained_on != fc.config_hash:
            raise VtrbenchError(
                f"checkpoint {checkpoint} was trained on another cache "
                f"(config hash {trained_on[:8] or '?'}), not {cache_path.name} ({fc.config_hash[:8]})"
            )
        head_name = str(ckpt["head"])
    else:
        head_name = "zeroshot"
        head = create_head("zeroshot", embed_dim=int(attrs["embed_dim"]))
    check_requirements(head, fc, head_name)
    if int(getattr(head, "embed_dim", attrs["embed_dim"])) != int(attrs["embed_dim"]):
        raise VtrbenchError(
            f"checkpoint {checkpoint} has embed_dim {head.embed_dim}, the cache {attrs['embed_dim']}"
        )
    return head, head_name


def video_captions(fc: FeatureCache, video_rows: Sequence[int]) -> dict[int, list[str]]:
    """The cached captions of each of ``video_rows`` (cache order), read for those videos only."""
    wanted = np.unique(np.asarray(list(video_rows), dtype=np.int64))
    if wanted.size == 0 or int(fc.attrs.get("n_texts", 0)) == 0:
        return {}
    owner = fc.file["texts"]["video"][:]
    text_rows = np.flatnonzero(np.isin(owner, wanted))
    if text_rows.size == 0:
        return {}
    # h5py reads an increasing list of rows without the whole column (200k captions on MSR-VTT)
    texts = fc.file["texts"]["caption"].asstr()[text_rows.tolist()]
    out: dict[int, list[str]] = {}
    for row, caption in zip(text_rows, texts, strict=True):
        out.setdefault(int(owner[row]), []).append(str(caption))
    return out


def _text_tower(
    fc: FeatureCache, attrs: dict[str, Any], clip_weights: str | None, device: str
) -> tuple[Any, str, str]:
    """(query encoder, where it came from, a note): a kept copy of the text tower when there is one
    that still reproduces the cache (no open_clip import), else open_clip's model, then kept."""
    model = str(attrs.get("model", ""))
    weights = clip_weights or str(attrs.get("pretrained", ""))
    if (
        clip_weights is None
        and not attrs.get("random_weights")
        and ("/" in weights or weights.endswith(".pt"))
    ):
        if not Path(weights).expanduser().is_file():
            raise VtrbenchError(
                f"search needs {_what(model, weights)}, but {weights} is not there; pass the same checkpoint "
                "file with --clip-weights PATH"
            )
    path = tower_path(model, weights)
    if path is not None:
        kept = load_tower(path, device)
        if kept is not None and kept.embed_dim == int(attrs["embed_dim"]):
            try:
                _check_tower(fc, kept, device)
                return kept, f"kept copy {path}", ""
            except VtrbenchError:
                pass  # a stale copy (the checkpoint file changed in place): rebuilt and replaced below
    clip = _load_text_tower(attrs, clip_weights, device)
    _check_tower(fc, clip, device)
    if path is None:
        return clip, "open_clip", ""
    caption = fc.read_strings("texts", "caption", [0]) if int(attrs.get("n_texts", 0)) else []
    problem = save_tower(clip, path, caption, int(attrs["max_words"]))
    if problem is not None:
        return clip, "open_clip", f"the text tower was not kept ({problem}); every search imports open_clip"
    size = path.stat().st_size / 2**20
    return clip, "open_clip", f"kept the text tower in {path} ({size:.0f} MB): later searches skip open_clip"


def _what(model: str, weights: str) -> str:
    return f"the CLIP the cache was extracted with ({model}, weights {weights!r})"


def _gallery_rows(fc: FeatureCache, split: str | None) -> np.ndarray:
    if split is not None:
        video_rows, _ = fc.split_rows(split)
    else:
        video_rows = np.arange(int(fc.attrs["n_videos"]))
    status = fc.read_rows("videos", "status", video_rows)
    rows = np.asarray(video_rows)[status == STATUS_OK]
    if rows.size == 0:
        raise CacheError(f"{fc.path}: no video of {split or 'the cache'} decoded; nothing to search")
    return rows


def _load_text_tower(attrs: dict[str, Any], clip_weights: str | None, device: str) -> Any:
    """The cache's CLIP built by open_clip (the slow path: ~3 s to import open_clip alone)."""
    model = str(attrs.get("model", ""))
    weights = clip_weights or str(attrs.get("pretrained", ""))
    what = _what(model, weights)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # --pretrained none: the cache says so already
            clip = load_clip(model, weights, device=device)
    except WeightsUnavailable as e:
        raise VtrbenchError(
            f"search needs {what}: {e.what()}; pass a checkpoint file of the same weights with "
            "--clip-weights PATH"
        ) from None
    except VtrbenchError as e:
        raise VtrbenchError(f"search needs {what}: {e}") from None
    if clip.embed_dim != int(attrs["embed_dim"]):
        raise VtrbenchError(
            f"search needs {what}; the loaded model has embed_dim {clip.embed_dim}, "
            f"the cache {attrs['embed_dim']}"
        )
    return clip


@torch.no_grad()
def _check_tower(fc: FeatureCache, clip: Any, device: str) -> None:
    """Encode a stored caption again: the same tokenizer and weights must give its ids and features."""
    n = int(fc.attrs["n_texts"])
    if n == 0:
        return
    row = np.array([0])
    caption = fc.read_strings("texts", "caption", [0])[0]
    ids = fc.read_rows("texts", "token_ids", row)
    eot = fc.read_rows("texts", "eot", row).astype(np.int64)
    stored = fc.read_rows("texts", "tokens", row).astype(np.float32)[0, int(eot[0])]
    tok = tokenize(clip, [caption], int(fc.attrs["max_words"]), [None])
    if not np.array_equal(tok.token_ids, ids):
        raise VtrbenchError(
            f"the tokenizer of {clip.model_name} does not give the token ids stored in {fc.path.name}; "
            "the cache was made with another model or open_clip version"
        )
    feats = encode_tokens(clip, torch.from_numpy(ids).to(device), torch.from_numpy(eot).to(device))
    again = feats[0, int(eot[0])].float().cpu().numpy()
    cos = float(again @ stored / max(np.linalg.norm(again) * np.linalg.norm(stored), 1e-12))
    if cos < CHECK_MIN_COSINE:
        raise VtrbenchError(
            f"the CLIP weights {clip.weights_source} do not reproduce the caption features of "
            f"{fc.path.name} (cosine {cos:.3f}); search needs the weights it was extracted with"
        )


@torch.no_grad()
def _encode_queries(
    clip: Any,
    queries: list[str],
    attrs: dict[str, Any],
    has_masks: bool,
    device: str,
    known: Sequence[Sequence[str] | None] | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    L, D = int(attrs["max_words"]), int(attrs["embed_dim"])
    tagger = make_tagger(str(attrs.get("tagger", "none"))) if has_masks else None
    known = known if known is not None else [None] * len(queries)
    # as texts.run_texts: roles a dataset gives bypass the tagger
    roles = [
        list(zip(q.split(), r, strict=False)) if r is not None else (tagger(q) if tagger else None)
        for q, r in zip(queries, known, strict=True)
    ]
    tok = tokenize(clip, queries, L, roles)
    feats = np.zeros((len(queries), L, D), dtype=np.float16)
    out = encode_tokens(
        clip,
        torch.from_numpy(tok.token_ids).to(device),
        torch.from_numpy(tok.eot.astype(np.int64)).to(device),
    )
    # float16 as the cache stores caption features: the same rounding as a cached caption
    feats[:, : out.shape[1]] = out.cpu().numpy().astype(np.float16)
    text = {
        "tokens": torch.from_numpy(feats),
        "token_mask": torch.from_numpy(tok.token_mask),
        "eot": torch.from_numpy(tok.eot.astype(np.int64)),
    }
    entries = [_Query(r) for r in known]
    verb_src = noun_src = np.array(["sentence"] * len(queries), dtype=object)
    if has_masks:
        text["noun_mask"] = torch.from_numpy(tok.noun_mask)
        text["verb_mask"] = torch.from_numpy(tok.verb_mask)
        verb_src = stream_sources(roles, entries, tok.verb_mask, "verb")
        noun_src = stream_sources(roles, entries, tok.noun_mask, "noun")
    info = []
    for i, q in enumerate(queries):
        n_tokens = len(bpe_with_spans(clip.tokenizer, q)[1]) + 2
        info.append(
            {
                "n_tokens": n_tokens,
                "truncated": n_tokens > L,
                "verb_source": str(verb_src[i]),
                "noun_source": str(noun_src[i]),
            }
        )
    return text, info


class _Query:
    """A query as texts.stream_sources sees a caption: roles given or found by the tagger."""

    def __init__(self, roles: Sequence[str] | None) -> None:
        self.roles = roles


def _score(head: Any, data: Any, device: str) -> torch.Tensor:
    """(Nq, Nv) similarity, computed the way evaluation computes it for a cached caption."""
    head.eval()
    if isinstance(head, PairwiseHead):
        ts, vs = states(head, data, device=device)
        bq, bv = head.eval_block
        with torch.no_grad():
            rows = []
            for s in range(0, data.n_texts, bq):
                t = {k: v[s : s + bq] for k, v in ts.items()}
                rows.append(
                    torch.cat(
                        [
                            head.score_states(t, {k: v[c : c + bv] for k, v in vs.items()}).float().cpu()
                            for c in range(0, data.n_videos, bv)
                        ],
                        dim=1,
                    )
                )
        return torch.cat(rows)
    text_emb, video_emb = embed(head, data, device=device)
    return text_emb @ video_emb.t()


@torch.no_grad()
def _gates(head: Any, text: dict[str, torch.Tensor], device: str) -> dict[str, np.ndarray] | None:
    n = int(text["tokens"].shape[0])
    g = head.gate_weights(take(text, torch.arange(n), torch.device(device)))
    return None if g is None else {k: v.float().cpu().numpy() for k, v in g.items()}
