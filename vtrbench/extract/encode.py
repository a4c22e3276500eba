"""The frozen CLIP encoder (open_clip): model loading, frame and per-token text features.

What is taken from the model (METHODS.md section 4):
- frame embedding: the visual tower's pooled output after ``ln_post`` and ``proj``;
- patch tokens (optional): the token outputs after ``ln_post``, multiplied by ``proj``;
- text: ``ln_final(transformer(token_embedding + positional_embedding, causal mask)) @
  text_projection`` at every position. Its EOT row equals ``encode_text``.

Captions are run truncated to the batch's longest caption: with the causal mask the
features at every real position are identical to padding to 77, and it is ~5x faster.
"""

from __future__ import annotations

import difflib
import logging
import warnings
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtrbench.errors import VtrbenchError
from vtrbench.extract import hub
from vtrbench.extract.tagging import WordRoles, bpe_with_spans, token_roles

TINY_MODEL = "vtrbench-tiny"
RANDOM_WEIGHTS = "none"
RANDOM_WEIGHTS_SEED = 0
_configs_registered = False


def _register_configs() -> None:
    global _configs_registered
    if not _configs_registered:
        import open_clip

        open_clip.add_model_config(Path(str(resources.files("vtrbench") / "model_configs")))
        _configs_registered = True


def list_models() -> list[str]:
    import open_clip

    _register_configs()
    return sorted(open_clip.list_models())


def is_torchscript(path: Path) -> bool:
    """OpenAI's released checkpoints are TorchScript zip archives (they hold ``constants.pkl``)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False  # a damaged archive: torch.load will say it is not a checkpoint


@dataclass
class LoadedClip:
    model: Any
    tokenizer: Any
    model_name: str
    pretrained: str
    embed_dim: int
    image_size: int
    random_weights: bool
    quick_gelu: bool
    weights_source: str


def load_clip(model_name: str, pretrained: str, device: str = "cpu") -> LoadedClip:
    """Build a frozen open_clip model.

    ``pretrained`` is a pretrained tag (``openai``, ``laion2b_s34b_b79k``; needs the
    hub), a local checkpoint file (open_clip state dict, or an OpenAI TorchScript
    archive whose QuickGELU activation is restored), or ``none`` for random weights.
    """
    import open_clip

    random_weights = pretrained in ("none", "")
    quick_gelu = bool(model_config(model_name).get("quick_gelu", False))
    path = Path(pretrained).expanduser()
    if random_weights:
        model, source = _random_model(model_name, device)
        warnings.warn(
            f"--pretrained none: {model_name} has RANDOM weights; its features are meaningless for real "
            "benchmarks (fine for tests and the synthetic demo)",
            stacklevel=2,
        )
    elif path.is_file():
        model, torchscript, source = _checkpoint_model(path, model_name, device)
        quick_gelu = quick_gelu or torchscript  # OpenAI's archives were trained with QuickGELU
    elif path.is_dir():
        raise VtrbenchError(f"--pretrained {pretrained} is a folder, not a checkpoint file")
    elif pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")) or "/" in pretrained:
        raise VtrbenchError(f"checkpoint file not found: {pretrained}")
    else:
        model, force_qg, source = _tagged_model(model_name, pretrained, device)
        quick_gelu = quick_gelu or force_qg
    model.eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(model_name)
    visual = model.visual
    size = visual.image_size
    image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
    embed_dim = int(visual.output_dim)
    return LoadedClip(
        model=model,
        tokenizer=tokenizer,
        model_name=model_name,
        pretrained=pretrained,
        embed_dim=embed_dim,
        image_size=image_size,
        random_weights=random_weights,
        quick_gelu=quick_gelu,
        weights_source=source,
    )


def _random_model(model_name: str, device: str) -> tuple[Any, str]:
    """(model with random weights, its weights source); the same weights on every call."""
    import open_clip

    # open_clip logs "No pretrained weights loaded" on the root logger; vtrbench warns itself.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        # Fixed seed, isolated from the caller's RNG: a resumed extraction must encode with the
        # same random model as the run it continues.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            model = open_clip.create_model(model_name, pretrained=None, device="cpu")
        model = model.to(device)
    finally:
        root.setLevel(level)
    return model, f"random initialisation (torch seed {RANDOM_WEIGHTS_SEED})"


def _checkpoint_model(path: Path, model_name: str, device: str) -> tuple[Any, bool, str]:
    """(model, whether it is an OpenAI TorchScript archive, its weights source) of a local file."""
    import open_clip

    if is_torchscript(path):
        # open_clip's loader uses torch.load(weights_only=True), which refuses TorchScript;
        # load_openai_model rebuilds the architecture from the state dict with QuickGELU.
        try:
            model = open_clip.load_openai_model(str(path), precision="fp32", device=device)
        except Exception as e:  # a damaged archive fails in many ways; the message says which
            raise VtrbenchError(
                f"{path} is a TorchScript archive but not an OpenAI CLIP checkpoint: {_first_line(e)}"
            ) from None
        _check_arch(model, model_name)
        return model, True, f"OpenAI TorchScript checkpoint {path}"
    try:
        model = open_clip.create_model(model_name, pretrained=str(path), device=device)
    except RuntimeError as e:
        if "size mismatch" in str(e) or "Missing key" in str(e) or "Unexpected key" in str(e):
            raise VtrbenchError(
                f"checkpoint {path} does not fit model {model_name!r}: {_first_line(e)}"
            ) from None
        raise _not_a_checkpoint(path, e) from None
    except Exception as e:  # torch.load of arbitrary bytes raises many types (UnpicklingError, ...)
        raise _not_a_checkpoint(path, e) from None
    return model, False, f"checkpoint file {path}"


def _tagged_model(model_name: str, pretrained: str, device: str) -> tuple[Any, bool, str]:
    """(model, whether it needs QuickGELU, its weights source) of an open_clip pretrained tag.

    A copy already downloaded is loaded from disk without any network call; otherwise the network is
    checked once (vtrbench.extract.hub) and an unreachable one is one line, not the hub's retries.
    """
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        close = difflib.get_close_matches(pretrained, tags, n=1)
        raise VtrbenchError(
            f"unknown pretrained tag {pretrained!r} for {model_name}"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + f" (available: {', '.join(tags) or 'none'}; or a local checkpoint file, or 'none')"
        )
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    # OpenAI weights need QuickGELU: plain GELU loads without error and gives wrong features.
    force_qg = bool(cfg.get("quick_gelu", False))
    local = hub.cached_weights(cfg)
    url = hub.weights_url(cfg)
    if local is None:
        problem = hub.network_problem(url)
        if problem is not None:
            raise hub.WeightsUnavailable(model_name, pretrained, url, problem)
    elif is_torchscript(Path(local)):  # OpenAI's archive in open_clip's URL cache
        model, _, _ = _checkpoint_model(Path(local), model_name, device)
        return model, True, f"pretrained tag {pretrained}"
    try:
        model = open_clip.create_model(
            model_name, pretrained=local or pretrained, device=device, force_quick_gelu=force_qg
        )
    except Exception as e:  # network failures surface as many exception types
        raise VtrbenchError(
            f"could not load pretrained weights {model_name}/{pretrained}: {_first_line(e)}. Without network "
            "access use --pretrained none for a trial run with random weights, or download the checkpoint "
            f"elsewhere and pass --pretrained /path/to/checkpoint.pt --preprocess-like {pretrained}"
        ) from None
    # the same source whether the file was downloaded now or before: the cache's attributes must not
    # depend on the machine's download cache
    return model, force_qg, f"pretrained tag {pretrained}"


def _first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, shortened at a word boundary (never mid-word)."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0].strip()
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + " …"


def _check_arch(model: Any, model_name: str) -> None:
    want = model_config(model_name).get("embed_dim")
    got = int(model.text_projection.shape[-1])
    if want is not None and want != got:
        raise VtrbenchError(
            f"the checkpoint holds a model with embed_dim {got}, but --model {model_name} has {want}"
        )


def _text_tower(model: Any) -> Any:
    # CLIP keeps the text tower's parts on the model itself; CustomTextCLIP has model.text.
    return model.text if hasattr(model, "text") and hasattr(model.text, "token_embedding") else model


@torch.no_grad()
def encode_frames(
    clip: LoadedClip, pixels: torch.Tensor, *, patch_tokens: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, 3, S, S) preprocessed frames -> (N, D) projected frame embeddings, and (N, P, D) patches."""
    visual = clip.model.visual
    autocast = torch.autocast("cuda", dtype=torch.float16) if pixels.is_cuda else _null()
    with autocast:
        if not patch_tokens:
            return visual(pixels).float(), None
        visual.output_tokens = True
        try:
            pooled, tokens = visual(pixels)
        finally:
            visual.output_tokens = False
        if visual.proj is not None:
            tokens = tokens @ visual.proj
        return pooled.float(), tokens.float()


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class TokenizedTexts:
    token_ids: np.ndarray  # (N, L) int32, 0-padded
    token_mask: np.ndarray  # (N, L) bool
    eot: np.ndarray  # (N,) int16
    noun_mask: np.ndarray  # (N, L) bool
    verb_mask: np.ndarray  # (N, L) bool


def tokenize(
    clip: LoadedClip, captions: list[str], max_words: int, roles: list[WordRoles | None]
) -> TokenizedTexts:
    """[SOT] + BPE + [EOT], truncated so the total is at most ``max_words`` (CLIP4Clip's rule)."""
    tok = clip.tokenizer
    n = len(captions)
    ids = np.zeros((n, max_words), dtype=np.int32)
    noun = np.zeros((n, max_words), dtype=bool)
    verb = np.zeros((n, max_words), dtype=bool)
    eot = np.zeros(n, dtype=np.int16)
    for i, (caption, word_roles) in enumerate(zip(captions, roles, strict=True)):
        cleaned, bpe, spans = bpe_with_spans(tok, caption)
        bpe, spans = bpe[: max_words - 2], spans[: max_words - 2]
        seq = [tok.sot_token_id, *bpe, tok.eot_token_id]
        ids[i, : len(seq)] = seq
        eot[i] = len(seq) - 1
        if word_roles:
            for j, role in enumerate(token_roles(cleaned, spans, word_roles), start=1):
                noun[i, j] = role == "noun"
                verb[i, j] = role == "verb"
    mask = np.arange(max_words)[None, :] <= eot[:, None]
    return TokenizedTexts(ids, mask, eot, noun, verb)


@torch.no_grad()
def encode_tokens(clip: LoadedClip, token_ids: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
    """(N, L) token ids -> (N, L', D) projected per-token features, L' = longest caption in the batch.

    Positions after a caption's EOT are zeroed: they are padding and must not carry
    values that a careless head could read.
    """
    tower = _text_tower(clip.model)
    length = int(eot.max().item()) + 1
    ids = token_ids[:, :length].long()
    cast = tower.transformer.get_cast_dtype()
    autocast = torch.autocast("cuda", dtype=torch.float16) if ids.is_cuda else _null()
    with autocast:
        x = tower.token_embedding(ids).to(cast) + tower.positional_embedding[:length].to(cast)
        x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
        x = tower.ln_final(x)
        proj = tower.text_projection
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    x = x.float()
    valid = torch.arange(length, device=x.device)[None, :] <= eot[:, None].to(x.device)
    return x * valid[..., None]


def _not_a_checkpoint(path: Path, e: BaseException) -> VtrbenchError:
    # torch's own message advises weights_only=False, i.e. running the file's code: never pass it on
    return VtrbenchError(
        f"--pretrained {path} is not a model checkpoint that can be loaded safely "
        f"({type(e).__name__}); give an open_clip/OpenAI CLIP checkpoint file, a pretrained tag, or 'none'"
    )


def model_config(model_name: str) -> dict[str, Any]:
    """open_clip's config of a registered model (vtrbench-tiny included); unknown names: did you mean."""
    import open_clip

    _register_configs()
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        available = open_clip.list_models()
        close = difflib.get_close_matches(model_name, available, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise VtrbenchError(
            f"unknown model {model_name!r}{hint} (see `vtrbench models` for the {len(available)} available)"
        )
    return cfg


def load_clip_config(model_name: str) -> int:
    """The image size of a model, from its config alone (no weights built); checks the name."""

    size = model_config(model_name)["vision_cfg"].get("image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)
