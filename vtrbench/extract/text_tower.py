"""A saved copy of a CLIP text tower that encodes queries without importing open_clip (search's start).

``import open_clip`` costs ~3 s (it imports torchvision, hence ``torch._dynamo``, and timm) before
a model is built; ``vtrbench search`` needs only the text tower and the BPE tokenizer. The first
search with a given CLIP (model and weights) builds it with open_clip as before; once the tower has
reproduced the cache's stored caption features (search's check), its weights are saved here, in
plain tensors, with what is needed to rebuild it (width, heads, layers, activation, the
tokenizer's settings). Later searches rebuild it from that file with the same torch modules
open_clip uses, and the tokenizer from open_clip's own ``tokenizer.py`` loaded on its own (the
package's ``__init__`` is what is slow).

Only a plain CLIP text tower is saved (open_clip's ``ResidualAttentionBlock`` without layer scale,
a token-embedding/positional-embedding/transformer/ln_final/projection tower, ``SimpleTokenizer``);
anything else keeps the open_clip path. A copy is written only after it gave **exactly** the
features of the open_clip tower on the cache's check caption and probe texts (``torch.equal``), and
every search that uses it checks it against the cache again (vtrbench.search). A copy that does not
load, or no longer matches, is ignored and replaced.

Where: ``$VTRBENCH_CACHE_DIR/text-towers`` (``$XDG_CACHE_HOME/vtrbench``, else ``~/.cache/vtrbench``);
``VTRBENCH_CACHE_DIR=off`` keeps nothing. Files are named by the sha256 of (model, weights: tag,
file path + size + mtime, or the random seed; open_clip and torch versions).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vtrbench.extract.backbone import BLOCK_KEYS
from vtrbench.extract.encode import RANDOM_WEIGHTS_SEED, LoadedClip, encode_tokens, model_config, tokenize

SCHEMA = 1
CACHE_ENV = "VTRBENCH_CACHE_DIR"
OFF_WORDS = ("off", "none", "0", "no")
TOKENIZER_MODULE = "vtrbench_open_clip_tokenizer"  # sys.modules name of open_clip's tokenizer.py
# texts encoded by both towers before a copy is saved (beside the cache's own check caption)
PROBES = ("a", "a man is slicing tomatoes in a kitchen", "Two DOGS!! run, jump & play; 3 of them...")


def tower_dir() -> Path | None:
    """The folder of saved text towers, or None when ``VTRBENCH_CACHE_DIR=off``."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in OFF_WORDS:
        return None
    if value:
        root = Path(value).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        root = (Path(xdg).expanduser() if xdg else Path("~/.cache").expanduser()) / "vtrbench"
    return root / "text-towers"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def weights_identity(pretrained: str) -> str:
    """What names a set of weights: the seed for random ones, path + size + mtime for a file, the tag."""
    if pretrained in ("none", ""):
        return f"random seed {RANDOM_WEIGHTS_SEED}"
    path = Path(pretrained).expanduser()
    if path.is_file():
        st = path.stat()
        return f"file {path.resolve()} {st.st_size} {st.st_mtime_ns}"
    return f"tag {pretrained}"


def tower_path(model: str, pretrained: str) -> Path | None:
    """Where the text tower of (model, weights) is kept, or None when keeping is off."""
    folder = tower_dir()
    if folder is None:
        return None
    key = json.dumps(
        [SCHEMA, model, weights_identity(pretrained), _version("open_clip_torch"), torch.__version__]
    )
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt"


# ---------------------------------------------------------------- the tower, rebuilt without open_clip


class QuickGELU(nn.Module):
    """open_clip's QuickGELU, operation for operation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class PlainBlock(nn.Module):
    """open_clip's ResidualAttentionBlock without layer scale: the same modules, called the same way."""

    def __init__(self, width: int, heads: int, activation: str, eps: float, batch_first: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=batch_first)
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        act = QuickGELU() if activation == "quick_gelu" else nn.GELU()
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, 4 * width)),
                    ("gelu", act),
                    ("c_proj", nn.Linear(4 * width, width)),
                ]
            )
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = attn_mask.to(x.dtype) if attn_mask is not None else None
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class PlainTransformer(nn.Module):
    def __init__(
        self, width: int, layers: int, heads: int, activation: str, eps: float, batch_first: bool
    ) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.resblocks = nn.ModuleList(
            PlainBlock(width, heads, activation, eps, batch_first) for _ in range(layers)
        )

    def get_cast_dtype(self) -> torch.dtype:
        return self.resblocks[0].mlp.c_fc.weight.dtype

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.batch_first:
            x = x.transpose(0, 1).contiguous()
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x.transpose(0, 1) if not self.batch_first else x


class PlainTextTower(nn.Module):
    """The attributes ``encode_tokens`` reads from an open_clip text tower, and nothing else."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        width, ctx = int(spec["width"]), int(spec["context_length"])
        self.token_embedding = nn.Embedding(int(spec["vocab_size"]), width)
        self.positional_embedding = nn.Parameter(torch.empty(ctx, width))
        self.transformer = PlainTransformer(
            width,
            int(spec["layers"]),
            int(spec["heads"]),
            str(spec["activation"]),
            float(spec["eps"]),
            bool(spec["batch_first"]),
        )
        self.ln_final = nn.LayerNorm(width, eps=float(spec["eps"]))
        if spec["projection"] == "linear":
            self.text_projection: Any = nn.Linear(
                width, int(spec["embed_dim"]), bias=bool(spec["projection_bias"])
            )
        else:
            self.text_projection = nn.Parameter(torch.empty(width, int(spec["embed_dim"])))
        self.register_buffer("attn_mask", torch.empty(ctx, ctx), persistent=True)


# ---------------------------------------------------------------- from an open_clip model


def _plain_spec(clip: LoadedClip) -> dict[str, Any] | None:
    """The tower's shape when it is a plain CLIP text tower with open_clip's SimpleTokenizer, else None."""
    from open_clip.transformer import QuickGELU as OpenClipQuickGELU

    model = clip.model
    tower = model.text if hasattr(model, "text") and hasattr(model.text, "token_embedding") else model
    parts = (
        "token_embedding",
        "positional_embedding",
        "transformer",
        "ln_final",
        "text_projection",
        "attn_mask",
    )
    if any(getattr(tower, p, None) is None for p in parts) or not hasattr(tower.transformer, "resblocks"):
        return None
    text_cfg = model_config(clip.model_name).get("text_cfg", {})
    if type(clip.tokenizer).__name__ != "SimpleTokenizer" or text_cfg.get("hf_tokenizer_name"):
        return None
    blocks = list(tower.transformer.resblocks)
    acts = set()
    for block in blocks:
        if set(block.state_dict()) != BLOCK_KEYS or not isinstance(block.attn, nn.MultiheadAttention):
            return None
        if not isinstance(getattr(block, "ls_1", nn.Identity()), nn.Identity) or hasattr(block, "ln_1_kv"):
            return None
        gelu = block.mlp.gelu
        acts.add(
            "quick_gelu"
            if isinstance(gelu, OpenClipQuickGELU)
            else "gelu"
            if isinstance(gelu, nn.GELU) and gelu.approximate == "none"
            else None
        )
    proj = tower.text_projection
    width = int(tower.positional_embedding.shape[-1])
    if (
        len(acts) != 1
        or None in acts
        or not blocks
        or tuple(blocks[0].mlp.c_fc.weight.shape) != (4 * width, width)
    ):
        return None
    return {
        "vocab_size": int(tower.token_embedding.num_embeddings),
        "width": width,
        "context_length": int(tower.positional_embedding.shape[0]),
        "layers": len(blocks),
        "heads": int(blocks[0].attn.num_heads),
        "activation": acts.pop(),
        "eps": float(blocks[0].ln_1.eps),
        "batch_first": bool(getattr(tower.transformer, "batch_first", True)),
        "projection": "linear" if isinstance(proj, nn.Linear) else "matrix",
        "projection_bias": bool(isinstance(proj, nn.Linear) and proj.bias is not None),
        "embed_dim": int(clip.embed_dim),
        "tokenizer": {
            "context_length": int(getattr(clip.tokenizer, "context_length", 77) or 77),
            "kwargs": dict(text_cfg.get("tokenizer_kwargs", {})),
        },
        "clip": {
            "model_name": clip.model_name,
            "pretrained": clip.pretrained,
            "image_size": clip.image_size,
            "random_weights": clip.random_weights,
            "quick_gelu": clip.quick_gelu,
            "weights_source": clip.weights_source,
        },
    }


def _tower_state(clip: LoadedClip) -> dict[str, torch.Tensor]:
    model = clip.model
    tower = model.text if hasattr(model, "text") and hasattr(model.text, "token_embedding") else model
    state = {}
    for name in ("token_embedding", "transformer", "ln_final"):
        for key, value in getattr(tower, name).state_dict().items():
            state[f"{name}.{key}"] = value
    proj = tower.text_projection
    if isinstance(proj, nn.Linear):
        state.update({f"text_projection.{k}": v for k, v in proj.state_dict().items()})
    else:
        state["text_projection"] = proj
    state["positional_embedding"] = tower.positional_embedding
    state["attn_mask"] = tower.attn_mask
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def load_tokenizer(spec: dict[str, Any]) -> Any:
    """open_clip's SimpleTokenizer from its own source file, without running open_clip's ``__init__``."""
    module = sys.modules.get(TOKENIZER_MODULE)
    if module is None:
        found = importlib.util.find_spec("open_clip")  # locates the package; does not import it
        if found is None or not found.submodule_search_locations:
            raise ImportError("open_clip is not installed")
        source = Path(next(iter(found.submodule_search_locations))) / "tokenizer.py"
        module_spec = importlib.util.spec_from_file_location(TOKENIZER_MODULE, source)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {source}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        sys.modules[TOKENIZER_MODULE] = module
    tok = spec["tokenizer"]
    default = getattr(module, "_tokenizer", None)  # tokenizer.py builds one at import (~0.1 s each)
    if default is not None and not tok["kwargs"] and default.context_length == int(tok["context_length"]):
        return default
    return module.SimpleTokenizer(context_length=int(tok["context_length"]), **tok["kwargs"])


def _rebuild(spec: dict[str, Any], state: dict[str, torch.Tensor], device: str) -> LoadedClip:
    tower = PlainTextTower(spec)
    tower.load_state_dict(state, strict=True)
    tower.eval().requires_grad_(False)
    c = spec["clip"]
    return LoadedClip(
        model=tower.to(device),
        tokenizer=load_tokenizer(spec),
        model_name=str(c["model_name"]),
        pretrained=str(c["pretrained"]),
        embed_dim=int(spec["embed_dim"]),
        image_size=int(c["image_size"]),
        random_weights=bool(c["random_weights"]),
        quick_gelu=bool(c["quick_gelu"]),
        weights_source=str(c["weights_source"]),
    )


def _device(clip: LoadedClip) -> torch.device:
    return next(clip.model.parameters()).device


def _same_features(a: LoadedClip, b: LoadedClip, texts: list[str], max_words: int) -> bool:
    ids_a = tokenize(a, texts, max_words, [None] * len(texts))
    ids_b = tokenize(b, texts, max_words, [None] * len(texts))
    if not (ids_a.token_ids == ids_b.token_ids).all():
        return False
    ids = torch.from_numpy(ids_a.token_ids).to(_device(a))
    eot = torch.from_numpy(ids_a.eot.astype("int64")).to(_device(a))
    return bool(torch.equal(encode_tokens(a, ids, eot), encode_tokens(b, ids, eot)))


def save_tower(clip: LoadedClip, path: Path, check_texts: list[str], max_words: int) -> str | None:
    """Keep ``clip``'s text tower at ``path``; None when done, else why not (nothing is written then).

    The copy is rebuilt and must give exactly ``clip``'s token ids and features on ``check_texts``
    and :data:`PROBES` before it is written (atomically: another search may read the folder)."""
    spec = _plain_spec(clip)
    if spec is None:
        return f"the text tower of {clip.model_name} is not a plain CLIP text tower"
    state = _tower_state(clip)
    try:
        copy = _rebuild(spec, state, str(_device(clip)))
    except Exception as e:  # noqa: BLE001 - any mismatch means: keep the open_clip path
        return f"the copy does not rebuild ({type(e).__name__})"
    if not _same_features(clip, copy, [*check_texts, *PROBES], max_words):
        return "the copy does not give exactly the open_clip tower's features"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"schema": SCHEMA, "spec": spec, "state": state}, tmp)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):  # the folder may not even exist (a file stands there)
            tmp.unlink(missing_ok=True)
        return f"cannot write {path.parent}: {e.strerror or e}"
    return None


def load_tower(path: Path, device: str) -> LoadedClip | None:
    """The text tower kept at ``path``, or None (no file, another schema, damaged, tokenizer missing)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or saved.get("schema") != SCHEMA:
            return None
        return _rebuild(saved["spec"], saved["state"], device)
    except Exception:  # noqa: BLE001 - a damaged or foreign file: the open_clip path rebuilds it
        return None
