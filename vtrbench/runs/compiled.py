"""``--compile MODE``: the training step (forward + loss) through ``torch.compile``.

Eager training on a GPU is bound by kernel launches at the recipe's batch of 128 (200 to 1,900
kernels a step, ``benchmarks/comparison_cost.py``); a compiled step fuses them, and
``reduce-overhead`` also replays the step as a CUDA graph. The backward pass follows through
AOTAutograd; the optimiser step, gradient clipping and the logit-scale clamp stay eager. Batch shapes
are fixed (every batch is ``batch_size`` rows, ``drop_last``, and the cache pads tokens and frames to
one length), so the step compiles once per run (``tests/runs/test_compile.py`` counts it).

Compiled kernels round differently from eager ones (fused reductions, other summation orders), so
``TrainConfig.compile`` is part of a run's identity (``"none"`` is left out of the hash).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any

import torch

from vtrbench import defaults
from vtrbench.config import check_option
from vtrbench.errors import VtrbenchError

Step = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]

_WITHOUT = "run without it: leave --compile out (or --compile none)"


def check_compile(mode: str, device: str) -> None:
    """Refuse ``--compile MODE`` on ``device`` before any training when torch.compile cannot run
    there: one line saying why and how to run without it. ``none`` needs nothing."""
    check_option("compile", mode)  # the one validation of the name (config.RUN_OPTIONS)
    if mode == "none":
        return
    import torch._dynamo

    version = ".".join(map(str, sys.version_info[:3]))
    if not torch._dynamo.is_dynamo_supported():
        raise VtrbenchError(
            f"--compile {mode}: torch {torch.__version__} cannot compile on Python {version}; {_WITHOUT}"
        )
    if device.startswith("cuda"):
        if importlib.util.find_spec("triton") is None:  # inductor's GPU kernels are Triton kernels
            raise VtrbenchError(
                f"--compile {mode} on {device} needs Triton, which this Python lacks "
                f"(pip install triton); {_WITHOUT}"
            )
        return
    # On the CPU inductor writes C++ and builds it: ask torch's own compiler search (it honours $CXX).
    # A build cache could let a few graphs through without a compiler, but not a new head or shape.
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as e:  # torch raises its own InvalidCxxCompiler (and may change that)
        raise VtrbenchError(
            f"--compile {mode} on the CPU needs a C++ compiler and torch found none "
            f"({type(e).__name__}; it looks for $CXX if set, else g++): install one or point CXX at it, "
            f"or {_WITHOUT}"
        ) from None


def training_step(
    head: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    aux_weight: float,
    autocast: tuple[str, bool],
    mode: str = defaults.COMPILE,
    check_logits: Callable[[torch.Tensor], None] | None = None,
) -> Step:
    """``step(text, video) -> (loss, logits)``: the head's training logits and the loss of the batch
    (plus ``aux_weight`` x the mean per-expert loss), under autocast ``(device_type, bf16 on)``;
    compiled with ``torch.compile(mode=...)`` unless ``mode`` is ``none``."""
    device_type, bf16 = autocast

    def step(text: dict[str, torch.Tensor], video: dict[str, torch.Tensor]) -> tuple[Any, Any]:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            logits, aux = head.training_logits(text, video)
            if check_logits is not None:  # before the loss, whose own refusal cannot name the head
                check_logits(logits)
            loss = loss_fn(logits.float())
            if aux and aux_weight > 0:
                loss = loss + aux_weight * torch.stack([loss_fn(a.float()) for a in aux]).mean()
        return loss, logits

    if mode == "none":
        return step
    # dynamic=False: the shapes are fixed, and a changed one should recompile rather than trace symbols
    compiled = torch.compile(step, mode=None if mode == "default" else mode, dynamic=False)
    if mode != "reduce-overhead":
        return compiled

    def graphed(text: dict[str, torch.Tensor], video: dict[str, torch.Tensor]) -> tuple[Any, Any]:
        # a new CUDA-graph step: the previous step's outputs (read and backpropagated by now) may be
        # overwritten; without the mark, cudagraph trees cannot tell steps apart
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(text, video)

    return graphed
