"""``--compile``: a compiled training step computes what the eager one does, and compiles once.

The oracle is eager PyTorch written out here: the head's training logits, the loss of the batch and,
for camoe with ``aux_weight``, ``loss + w * mean_k loss(aux_k)`` (README's aux-loss formula), with
autograd's gradients. The step under test is :func:`vtrbench.runs.compiled.training_step` with
torch.compile's inductor backend (C++ on this CPU).

Tolerances: one step's loss to a relative 1e-5 and every gradient to 1e-4 of that parameter's largest
gradient plus 1e-6 of the largest gradient of the head (fp32: inductor fuses and reorders reductions,
about 1e-6 relative here; the second term is for gradients that are zero in exact arithmetic, e.g.
xpool's key bias, which shifts all of a caption's attention scores alike: both sides then hold only
rounding noise of ~1e-8); after training,
per-epoch losses to a relative 1e-3 (rounding differences grow through AdamW's steps; measured well
below that), and each caption's rank of its video in the compiled-trained head's scores must lie in
the eager-trained head's tie band (scores within 1e-4 count as tied).

Compiling is slow on a CPU the first time (tens of seconds per head, less from torch's on-disk cache
after that), so these tests are marked slow and cover the heads whose training code differs most:
meanp (pooled, no sequence model), seqtransf (temporal transformer), camoe (experts, gate, aux
losses) and xpool (pairwise, text-conditioned pooling). Every head goes through dynamo's capture and
AOTAutograd's joint graph with the ``aot_eager`` backend (the same graphs, run by PyTorch's own
kernels: what capture can get wrong — graph breaks, mutated buffers, aux losses — shows there); the
C++ code inductor generates is checked on meanp by default, and on all four heads with
``VTRBENCH_FULL_COMPILE_TESTS=1``. Measured with an empty inductor cache on the 2-core machine
(2026-12-07, `TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) pytest tests/runs/test_compile.py --durations=10`):
inductor took 24 s (meanp), 20 s (seqtransf), 75 s (camoe) and 43 s (xpool) per head, which is
more than the whole suite can spend on one option.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from vtrbench.config import TrainConfig
from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head, create_loss
from vtrbench.runs.compiled import check_compile, training_step
from vtrbench.runs.data import take, text_for
from vtrbench.runs.train import fit

sys.path.insert(0, str(Path(__file__).parent))
from test_train_loop import DIM, make_split  # noqa: E402

HEADS = {
    "meanp": {},
    "seqtransf": {"init": "random", "layers": 1},
    "camoe": {"init": "random", "layers": 1, "aux_weight": 0.5},
    "xpool": {},
}


def _batch(head: Any, n_videos: int = 8) -> tuple[dict, dict]:
    data = text_for(head, make_split(n_videos, 1, seed=3))
    idx = torch.arange(n_videos)
    cpu = torch.device("cpu")
    return take(data.text, idx, cpu), take(data.video, data.text_video.index_select(0, idx), cpu)


def _grads(head: Any) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in head.named_parameters() if p.grad is not None}


FULL = os.environ.get("VTRBENCH_FULL_COMPILE_TESTS") == "1"
CASES = [(name, "aot_eager") for name in HEADS] + [
    (name, "inductor") for name in HEADS if FULL or name == "meanp"
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "backend"), CASES)
def test_a_compiled_step_gives_the_eager_loss_and_gradients(
    name: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "inductor":  # training_step calls torch.compile(step, mode=..., dynamic=False)
        monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))
    torch.manual_seed(0)
    head = create_head(name, embed_dim=DIM, **HEADS[name]).train()
    twin = copy.deepcopy(head)
    text, video = _batch(head)
    loss_fn = create_loss("infonce")
    w = float(HEADS[name].get("aux_weight", 0.0))

    # the oracle, eager
    logits, aux = twin.training_logits(text, video)
    expected = loss_fn(logits.float())
    if w > 0:
        assert aux, "camoe with aux_weight must give per-expert logits (else this test covers nothing)"
        expected = expected + w * sum(loss_fn(a.float()) for a in aux) / len(aux)
    expected.backward()

    step = training_step(head, loss_fn, w, ("cpu", False), "default")
    loss, got_logits = step(text, video)
    loss.backward()
    assert got_logits.shape == (8, 8)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    want, got = _grads(twin), _grads(head)
    assert want.keys() == got.keys() and want
    largest = max(float(g.abs().max()) for g in want.values())
    for key in want:
        scale = float(want[key].abs().max())
        assert float((got[key] - want[key]).abs().max()) <= 1e-4 * scale + 1e-6 * largest, key


class StepCounter:
    """A stand-in progress display: after every training step, the number of graphs dynamo built."""

    def __init__(self) -> None:
        self.graphs: list[int] = []

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        from torch._dynamo.utils import counters

        self.graphs.append(int(counters["stats"]["unique_graphs"]))


def _tie_band(scores: torch.Tensor, target: torch.Tensor, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query row: the best and the worst rank its target can take when scores within ``tol``
    of the target's are ties (rank 1 = top)."""
    s = scores.gather(1, target[:, None])
    best = 1 + (scores > s + tol).sum(1)
    worst = (scores >= s - tol).sum(1)
    return best, worst


@pytest.mark.slow
def test_compiled_training_compiles_once_and_ranks_as_eager() -> None:
    import torch._dynamo

    data = make_split(12, 2, seed=1)
    config = TrainConfig(cache_hash="x", head="meanp", loss="infonce", epochs=3, batch_size=8, lr=1e-3)
    torch.manual_seed(0)
    eager = create_head("meanp", embed_dim=DIM)
    compiled = copy.deepcopy(eager)
    want = fit(eager, data, config, seed=0)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    counter = StepCounter()
    got = fit(compiled, data, dataclasses.replace(config, compile="default"), seed=0, progress=counter)
    steps = (24 // 8) * 3
    assert len(counter.graphs) == steps
    # one graph on the first step and no recompilation on any later one (fixed shapes)
    assert counter.graphs[0] >= 1 and counter.graphs == [counter.graphs[0]] * steps
    for a, b in zip(want, got, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)

    # same ranks within ties: each caption's video among all videos, by both trained heads
    full = text_for(eager, data)
    cpu = torch.device("cpu")
    text = take(full.text, torch.arange(full.n_texts), cpu)
    video = take(full.video, torch.arange(full.n_videos), cpu)
    with torch.no_grad():
        s_eager = eager.eval().training_logits(text, video)[0]
        s_comp = compiled.eval().training_logits(text, video)[0]
    assert s_eager.shape == (24, 12)
    target = full.text_video
    best, worst = _tie_band(s_eager, target, 1e-4 * float(s_eager.abs().max()))
    rank = 1 + (s_comp > s_comp.gather(1, target[:, None])).sum(1)
    assert bool(((rank >= best) & (rank <= worst)).all()), (rank, best, worst)


def test_compile_none_is_the_eager_step_itself() -> None:
    torch.manual_seed(0)
    head = create_head("meanp", embed_dim=DIM)
    step = training_step(head, create_loss("infonce"), 0.0, ("cpu", False), "none")
    assert not hasattr(step, "_torchdynamo_orig_callable")  # no dynamo wrapper: eager, as before


@pytest.mark.parametrize("bad", ["fast", "", "None", "reduce_overhead", None, 1])
def test_a_bad_mode_is_one_line(bad: Any) -> None:
    with pytest.raises(VtrbenchError, match="--compile must be one of none, default"):
        check_compile(bad, "cpu")


def test_no_compiler_is_refused_before_training() -> None:
    # torch's own compiler search, pointed at a compiler that does not exist (as CXX=... would)
    import torch._inductor.config as inductor_config

    # torch's own patch(): pytest's monkeypatch would *delete* cpp.cxx on undo (a config proxy has no
    # __dict__ entry to restore), breaking torch.compile for every later test in the process
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/bin/g++")}):
        with pytest.raises(VtrbenchError, match="needs a C\\+\\+ compiler.*--compile none"):
            check_compile("default", "cpu")
    check_compile("none", "cpu")  # eager needs none


def test_eager_keeps_its_run_id_and_a_compiled_run_has_its_own() -> None:
    import json

    from vtrbench.config import canonical_json, config_hash

    eager = TrainConfig(cache_hash="x", head="meanp", loss="infonce")
    # "none" is left out of the canonical JSON, so every eager config hashes as before the field existed
    assert "compile" not in json.loads(canonical_json(eager))
    # the hash this config had before --compile existed (main at 77b4117, the same expression there)
    assert config_hash(eager) == "2338b1002d3c7394"
    modes = {m: config_hash(dataclasses.replace(eager, compile=m)) for m in ("default", "reduce-overhead")}
    assert json.loads(canonical_json(dataclasses.replace(eager, compile="default")))["compile"] == "default"
    assert len({config_hash(eager), *modes.values()}) == 3
