"""Every public function of ``vtrbench.api`` against hostile arguments (issue 19, class 3).

The Python API goes through the command line's rules (``config.RUN_OPTIONS`` and the runner's
checks): each wrong argument must end as ONE ``VtrbenchError`` that names the function and the
argument, raised before any work, never an internal exception (``AttributeError: 'dict' object
has no attribute 'n_texts'``, a shape error) and never a silently accepted value (``epochs=0``
returning ``[]``, ``batch_size=1`` returning loss 0.0).

The table is checked for completeness: a new name in ``api.__all__`` without hostile cases fails
``test_every_public_function_has_hostile_cases``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.faults.plugin_api_cases import API_CASES as CASES
from benchmarks.faults.plugin_api_cases import NAN, PLAIN_TYPES, Call, Env
from vtrbench import api


@pytest.fixture(scope="module")
def env(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    return Env(synth_cache, tmp_path_factory.mktemp("api_hostile"))


@pytest.fixture(autouse=True)
def _forget_registrations() -> Any:
    """Registrations made by a case (none should succeed) are undone."""
    from vtrbench import plugins

    regs = plugins._registries()
    for reg in regs.values():
        reg.load_builtins()
    saved = {k: dict(r._entries) for k, r in regs.items()}
    yield
    for k, r in regs.items():
        r._entries.clear()
        r._entries.update(saved[k])


def test_every_public_function_has_hostile_cases() -> None:
    covered = {fn for fn, *_ in CASES}
    no_arguments = {"list_heads", "list_losses", "loaded_plugins"}
    functions = {n for n in api.__all__ if n not in PLAIN_TYPES} - no_arguments
    assert functions - covered == set(), f"api functions without hostile cases: {sorted(functions - covered)}"
    assert len(CASES) >= 240


@pytest.mark.parametrize("fn,arg,label,call,words", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_hostile_argument_is_one_vtrbench_error_naming_it(
    env: Env, fn: str, arg: str, label: str, call: Call, words: tuple[str, ...]
) -> None:
    before = sorted(p.name for p in env.tmp.rglob("*"))
    with pytest.raises(api.VtrbenchError) as info:
        call(env)
    message = str(info.value)
    assert "\n" not in message, message
    missing = [w for w in words if w not in message]
    assert not missing, f"the error does not name {missing}: {message}"
    assert sorted(p.name for p in env.tmp.rglob("*")) == before  # nothing written


def test_argument_free_functions_answer_lists() -> None:
    assert "meanp" in api.list_heads() and "infonce" in api.list_losses()
    assert isinstance(api.loaded_plugins(), list)


def test_valid_calls_still_work_and_train_head_uses_the_heads_options(env: Env) -> None:
    """The checks refuse only what is wrong; camoe's aux_weight now reaches the trainer (it was
    dropped: train_head built its config with empty head options)."""
    history = api.train_head(env.head, env.train, epochs=1, batch_size=4, warmup=0.0, betas=(0.9, 0.98))
    assert len(history) == 1 and math.isfinite(history[0]["loss"]) and history[0]["loss"] > 0
    out = api.evaluate_embeddings(torch.randn(4, 3), torch.randn(2, 3), env.qv, logit_scale=100.0,
                                  postprocessing=("raw",))  # fmt: skip
    assert set(out["metrics"]) == {"raw"}
    sim = api.evaluate_similarity(env.sim, env.qv, postprocessing=["raw"])
    assert sim["metrics"]["raw"]["t2v"]["R@1"] >= 0

    def losses(aux: float) -> float:
        head = api.create_head("camoe", embed_dim=env.dim, aux_weight=aux)
        torch.manual_seed(0)
        head.load_state_dict(base)
        return api.train_head(head, env.train, epochs=1, batch_size=4, seed=0)[0]["loss"]

    torch.manual_seed(0)
    base = api.create_head("camoe", embed_dim=env.dim, aux_weight=0.0).state_dict()
    assert losses(0.0) != losses(1.0)


def test_write_result_writes_only_what_read_result_reads(tmp_path: Path, synth_cache: Path) -> None:
    out = api.run_eval(synth_cache, checkpoint=None, results_dir=tmp_path / "r")
    good = api.read_result(out.path)
    good.pop("_path")
    api.write_result(tmp_path / "copy.json", good)
    assert api.read_result(tmp_path / "copy.json")["run_id"] == good["run_id"]
    for bad in ({**good, "seed": "0"}, {**good, "extra": torch.ones(2)}, {**good, "extra": NAN}):
        with pytest.raises(api.VtrbenchError, match="not writing"):
            api.write_result(tmp_path / "bad.json", bad)
    assert not (tmp_path / "bad.json").exists()
