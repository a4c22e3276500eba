"""Which image preprocessing a model needs: open_clip's resolution, without building the model.

open_clip's ``create_model_and_transforms(model, pretrained=TAG)`` starts from
``PreprocessCfg()`` (OpenAI's mean/std, bicubic, ``shortest``, fill 0), overlays the
pretrained tag's config (``get_pretrained_cfg``: mean, std, interpolation,
resize_mode), takes the size from the built visual tower (the model config's
``vision_cfg.image_size``), then applies the caller's explicit overrides. vtrbench
does the same, from the configs alone:

- a pretrained tag: the tag's values;
- a local checkpoint file: OpenAI's values, unless ``--preprocess-like TAG`` names the
  tag whose values apply; open_clip itself falls back to OpenAI's values there, which
  is wrong for e.g. a SigLIP checkpoint, so vtrbench warns (except for OpenAI's own
  TorchScript archives, where OpenAI's values are right);
- random weights (``none``): OpenAI's values (tests and the synthetic demo);
- ``--image-mean``, ``--image-std``, ``--interpolation``, ``--resize-mode``: override last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtrbench.errors import VtrbenchError
from vtrbench.extract.encode import is_torchscript, model_config
from vtrbench.extract.preprocess import CLIP_MEAN, CLIP_STD, INTERPOLATIONS, RESIZE_MODES

Triple = tuple[float, float, float]

# Sane bounds of the normalisation values. Pixels are on open_clip's 0-1 scale and every
# CLIP-family tag uses a mean in [0, 1] and a std in [0.2, 0.5] (OpenAI 0.27, SigLIP 0.5).
# Normalised pixels are (x - mean) / std with x in [0, 1]: with std >= STD_MIN and
# |mean| <= MEAN_MAX they stay within (1 + 10) / 1e-3 = 11000, inside float16's range (65504,
# the encoder's input dtype on CUDA); std 1e-30 or mean 1e30 gave a cache of NaN/inf frames.
# A std above STD_MAX or a mean beyond MEAN_MAX squeezes every image to almost one value and is
# almost surely given on the 0-255 scale (ImageNet's 123.675 / 58.395).
STD_MIN, STD_MAX = 1e-3, 10.0
MEAN_MAX = 10.0


@dataclass(frozen=True)
class Preprocessing:
    """The values of open_clip's inference transform, and where they came from."""

    size: int
    mean: Triple
    std: Triple
    interpolation: str
    resize_mode: str
    fill_color: int = 0
    source: str = ""  # how the values were chosen (not a value: kept out of the config hash)
    warning: str = ""  # set when OpenAI's values were assumed for weights of unknown origin

    def values(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "resize_mode": self.resize_mode,
            "fill_color": self.fill_color,
        }

    def describe(self) -> str:
        """One line for ``inspect`` and result files."""

        def fmt(t: Triple) -> str:
            return "(" + ", ".join(f"{v:g}" for v in t) + ")"

        return (
            f"{self.resize_mode} {self.interpolation} {self.size}px, mean {fmt(self.mean)}, "
            f"std {fmt(self.std)} [{self.source}]"
        )


def _triple(value: Any, name: str) -> Triple:
    # open_clip's image_transform repeats a single value over the three channels.
    if isinstance(value, (int, float)):
        value = (value,) * 3
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise VtrbenchError(f"{name} must be 1 or 3 numbers, got {value!r}") from None
    if len(out) == 1:
        out = out * 3
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise VtrbenchError(f"{name} must be 1 or 3 finite numbers, got {value!r}")
    return out  # type: ignore[return-value]


def check_mean_std(
    mean: Any, std: Any, mean_name: str = "image mean", std_name: str = "image std"
) -> tuple[Triple, Triple]:
    """Both values as triples, or one VtrbenchError line naming the value and the sane range.

    The single check every way of choosing preprocessing goes through (CLI options, tags, an
    ExtractConfig built in Python)."""
    mean_t, std_t = _triple(mean, mean_name), _triple(std, std_name)
    scale = "; values are on the 0-1 pixel scale (divide 0-255 values by 255)"
    if any(not STD_MIN <= v <= STD_MAX for v in std_t):
        hint = scale if max(std_t) > STD_MAX else ""
        raise VtrbenchError(
            f"{std_name} must lie in [{STD_MIN:g}, {STD_MAX:g}] (a tiny std overflows the encoder), "
            f"got {_fmt(std_t)}{hint}"
        )
    if any(abs(v) > MEAN_MAX for v in mean_t):
        raise VtrbenchError(
            f"{mean_name} must lie in [-{MEAN_MAX:g}, {MEAN_MAX:g}], got {_fmt(mean_t)}{scale}"
        )
    return mean_t, std_t


def _fmt(t: Triple) -> str:
    return "(" + ", ".join(f"{v:g}" for v in t) + ")"


def parse_triple(text: str | None, option: str) -> Triple | None:
    """``"0.5"`` or ``"0.48,0.45,0.40"`` (commas or spaces) -> three floats; None stays None."""
    if text is None:
        return None
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        return _triple([float(p) for p in parts], option)
    except ValueError:
        raise VtrbenchError(f"{option} must be 1 or 3 numbers, got {text!r}") from None


def _model_image_size(model: str) -> int:
    size = model_config(model)["vision_cfg"].get("image_size", 224)
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise VtrbenchError(
                f"--model {model} takes non-square {tuple(size)} images; vtrbench needs square"
            )
        size = size[0]
    return int(size)


def _tag_cfg(model: str, tag: str, option: str) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise VtrbenchError(
            f"{option} {tag!r}: not a pretrained tag of {model} (its tags: {', '.join(tags) or 'none'})"
        )
    return cfg


def resolve_preprocessing(
    model: str,
    pretrained: str,
    *,
    like: str | None = None,
    mean: Any = None,
    std: Any = None,
    interpolation: str | None = None,
    resize_mode: str | None = None,
) -> Preprocessing:
    """The preprocessing open_clip would apply for ``model`` with ``pretrained``, plus overrides.

    Raises VtrbenchError for an unknown model, a ``like`` tag the model lacks, or a bad value.
    """
    import open_clip

    size = _model_image_size(model)
    values: dict[str, Any] = {
        "mean": CLIP_MEAN,
        "std": CLIP_STD,
        "interpolation": "bicubic",
        "resize_mode": "shortest",
        "fill_color": 0,
    }
    warning = ""
    path = Path(pretrained).expanduser() if pretrained not in ("", "none") else None
    if like is not None:
        tag_cfg = _tag_cfg(model, like, "--preprocess-like")
        source = f"pretrained tag {like} (--preprocess-like)"
    elif pretrained in ("", "none"):
        tag_cfg = {}
        source = "OpenAI default (random weights)"
    elif open_clip.get_pretrained_cfg(model, pretrained):
        tag_cfg = open_clip.get_pretrained_cfg(model, pretrained)
        source = f"pretrained tag {pretrained}"
    elif path is not None and path.is_file() and _is_openai_archive(path):
        tag_cfg = {}
        source = "OpenAI default (OpenAI TorchScript checkpoint)"
    else:
        tag_cfg = {}
        source = "OpenAI default (assumed for a checkpoint file)"
        warning = (
            f"no preprocessing is known for --pretrained {pretrained}: using OpenAI's mean/std, bicubic, "
            "shortest-side resize; if the checkpoint was trained otherwise, pass --preprocess-like TAG or "
            "--image-mean/--image-std/--interpolation/--resize-mode"
        )
    for key in ("mean", "std", "interpolation", "resize_mode", "fill_color"):
        if tag_cfg.get(key) is not None:
            values[key] = tag_cfg[key]
    overrides = {"mean": mean, "std": std, "interpolation": interpolation, "resize_mode": resize_mode}
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        values.update(given)
        source += "; set by option: " + ", ".join(sorted(given))
        warning = ""
    # open_clip's inference transform treats "random" (a training-time choice) as bicubic.
    interp = "bicubic" if values["interpolation"] == "random" else values["interpolation"]
    if interp not in INTERPOLATIONS:
        raise VtrbenchError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interp!r}")
    if values["resize_mode"] not in RESIZE_MODES:
        raise VtrbenchError(
            f"resize mode must be one of {', '.join(RESIZE_MODES)}, got {values['resize_mode']!r}"
        )
    mean_t, std_t = check_mean_std(
        values["mean"],
        values["std"],
        "--image-mean" if mean is not None else "image mean",
        "--image-std" if std is not None else "image std",
    )
    return Preprocessing(
        size=size,
        mean=mean_t,
        std=std_t,
        interpolation=interp,
        resize_mode=values["resize_mode"],
        fill_color=int(values["fill_color"]),
        source=source,
        warning=warning,
    )


def _is_openai_archive(path: Path) -> bool:
    try:
        return is_torchscript(path)
    except OSError:
        return False


def check_preprocessing(config: Any) -> None:
    """Validate an ExtractConfig's preprocessing values (every way of building one comes through here)."""
    if config.interpolation not in INTERPOLATIONS:
        raise VtrbenchError(
            f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {config.interpolation!r}"
        )
    if config.resize_mode not in RESIZE_MODES:
        raise VtrbenchError(
            f"resize mode must be one of {', '.join(RESIZE_MODES)}, got {config.resize_mode!r}"
        )
    check_mean_std(config.image_mean, config.image_std, "image_mean", "image_std")


def from_config(config: Any, source: str | None = None) -> Preprocessing:
    """The Preprocessing an ExtractConfig holds; ``source`` defaults to what resolution says of it."""
    pre = Preprocessing(
        size=int(config.image_size),
        mean=_triple(config.image_mean, "image mean"),
        std=_triple(config.image_std, "image std"),
        interpolation=config.interpolation,
        resize_mode=config.resize_mode,
        source=source or "",
    )
    if source is None:
        try:
            resolved = resolve_preprocessing(config.model, config.pretrained)
        except VtrbenchError:
            resolved = None
        same = resolved is not None and resolved.values() == pre.values()
        pre = Preprocessing(
            **{**pre.values(), "mean": pre.mean, "std": pre.std},
            source=resolved.source if same and resolved is not None else "set in the extraction config",
        )
    return pre


def preprocessing_attrs(config: Any, source: str | None = None) -> dict[str, Any]:
    """Cache attributes that record the preprocessing (``preprocess`` is the one-line summary)."""
    pre = from_config(config, source)
    return {
        "image_mean": list(pre.mean),
        "image_std": list(pre.std),
        "interpolation": pre.interpolation,
        "resize_mode": pre.resize_mode,
        "fill_color": pre.fill_color,
        "preprocess_source": pre.source,
        "preprocess": pre.describe(),
    }
