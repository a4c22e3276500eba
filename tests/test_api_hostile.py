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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vtrbench import api

NAN = math.nan
# Names in api.__all__ that are types, not functions: data records and the error class. Their
# constructors are not validated (RunSpec and CaptionVideoDataset are, and are in the table).
PLAIN_TYPES = {"Batch", "DatasetIndex", "FeatureCache", "Head", "SplitData", "TrainConfig", "VtrbenchError"}


class Env:
    """What the hostile calls need: the synthetic cache, its splits and a head of the right width."""

    def __init__(self, cache: Path, tmp: Path) -> None:
        self.cache_path = cache
        self.tmp = tmp
        with api.open_cache(cache) as c:
            self.dim = int(c.attrs["embed_dim"])
            self.train = api.load_split(c, str(c.attrs["default_train"]))
            self.test = api.load_split(c, str(c.attrs["default_test"]))
        self.head = api.create_head("meanp", embed_dim=self.dim)
        self.wide = replace(
            self.test, video={**self.test.video, "frames": torch.zeros(self.test.n_videos, 4, self.dim + 1)}
        )
        self.sim = np.random.default_rng(0).normal(size=(4, 2))
        self.qv = np.array([0, 0, 1, 1])
        self.spec = api.RunSpec(cache_path=cache, head="meanp", loss="infonce", results_dir=tmp / "r")


Call = Callable[[Env], Any]


def _train(**kw: Any) -> Call:
    return lambda e: api.train_head(kw.pop("head", e.head), kw.pop("train", e.train), **kw)


def _eval_head(**kw: Any) -> Call:
    return lambda e: api.evaluate_head(kw.pop("head", e.head), kw.pop("test", e.test), **kw)


def _emb(**kw: Any) -> Call:
    def call(e: Env) -> Any:
        args = {"text_emb": torch.randn(4, 3), "video_emb": torch.randn(2, 3), "query_video": e.qv}
        args.update(kw)
        args.setdefault("logit_scale", 100.0)
        return api.evaluate_embeddings(**args)

    return call


def _sim(**kw: Any) -> Call:
    def call(e: Env) -> Any:
        args = {"similarity": e.sim, "query_video": e.qv, **kw}
        return api.evaluate_similarity(**args)

    return call


def _spec(**kw: Any) -> Call:
    return lambda e: api.RunSpec(
        **{"cache_path": e.cache_path, "head": "meanp", "loss": "infonce", "results_dir": e.tmp / "r", **kw}
    )


# (function, argument, label, call, words the one-line error must hold)
CASES: list[tuple[str, str, str, Call, tuple[str, ...]]] = []


def case(fn: str, arg: str, label: str, call: Call, *words: str) -> None:
    CASES.append((fn, arg, label, call, words or (fn, arg)))


# ---------------------------------------------------------------- caches and splits
for label, value in [("none", None), ("int", 5), ("bool", True), ("list", ["a"]), ("empty", "")]:
    case("open_cache", "path", label, lambda e, v=value: api.open_cache(v))
case("open_cache", "path", "missing", lambda e: api.open_cache(e.tmp / "nope.h5"), "no feature cache")
case("open_cache", "path", "folder", lambda e: api.open_cache(e.tmp), "folder")
for label, value in [("none", None), ("int", 5), ("dict", {})]:
    case("load_split", "cache", label, lambda e, v=value: api.load_split(v, "train"))
for label, value in [("none", None), ("int", 5), ("empty", ""), ("list", ["train"])]:
    case("load_split", "split", label, lambda e, v=value: api.load_split(e.cache_path, v))
case("load_split", "split", "unknown", lambda e: api.load_split(e.cache_path, "nosuch"), "nosuch")
case("load_split", "patches", "str", lambda e: api.load_split(e.cache_path, "train", patches="yes"))
for label, value in [("none", None), ("dict", {"n_texts": 3}), ("str", "train")]:
    case("CaptionVideoDataset", "split", label, lambda e, v=value: api.CaptionVideoDataset(v))

# ---------------------------------------------------------------- heads and losses
for label, value in [("none", None), ("int", 3), ("empty", ""), ("unknown", "nosuch"), ("list", ["meanp"])]:
    case("create_head", "head", label, lambda e, v=value: api.create_head(v, embed_dim=8))
for label, value in [("zero", 0), ("neg", -4), ("nan", NAN), ("float", 8.0), ("str", "8"), ("bool", True),
                     ("none", None), ("huge", 10**9)]:  # fmt: skip
    case("create_head", "embed_dim", label, lambda e, v=value: api.create_head("xpool", embed_dim=v))
case("create_head", "options", "unknown", lambda e: api.create_head("meanp", embed_dim=8, bogus=1), "bogus")
case("create_head", "options", "nan", lambda e: api.create_head("camoe", embed_dim=8, aux_weight=NAN), "aux")
case("create_head", "options", "neg-weight", lambda e: api.create_head("camoe", embed_dim=8, aux_weight=-1.0),
     "aux")  # fmt: skip
for label, value in [("none", None), ("int", 3), ("empty", ""), ("unknown", "nosuch")]:
    case("create_loss", "loss", label, lambda e, v=value: api.create_loss(v))
for label, value in [("nan", NAN), ("zero", 0.0), ("neg", -1.0), ("inf", math.inf), ("str", "1000"),
                     ("bool", True), ("none", None)]:  # fmt: skip
    case("create_loss", "temperature", label, lambda e, v=value: api.create_loss("dsl", temperature=v),
         "create_loss", "temperature")  # fmt: skip
case("create_loss", "options", "infonce-option", lambda e: api.create_loss("infonce", temperature=2.0),
     "temperature")  # fmt: skip

# ---------------------------------------------------------------- training
for label, value in [("none", None), ("dict", {}), ("str", "meanp"), ("module", torch.nn.Linear(2, 2))]:
    case("train_head", "head", label, _train(head=value))
case("train_head", "head", "zeroshot", lambda e: api.train_head(api.create_head("zeroshot", embed_dim=e.dim),
     e.train), "nothing to train")  # fmt: skip
for label, value in [("none", None), ("dict", {"frames": 1}), ("str", "train")]:
    case("train_head", "train", label, _train(train=value))
case("train_head", "train", "width", lambda e: api.train_head(e.head, e.wide), "train_head", "width")
case("train_head", "val", "dict", _train(val={}))
for label, value in [("zero", 0), ("neg", -1), ("float", 2.0), ("nan", NAN), ("str", "2"), ("bool", True),
                     ("none", None)]:  # fmt: skip
    case("train_head", "epochs", label, _train(epochs=value))
for label, value in [("one", 1), ("zero", 0), ("float", 8.5), ("str", "8")]:
    case("train_head", "batch_size", label, _train(batch_size=value))
for label, value in [("zero", 0.0), ("neg", -1e-4), ("nan", NAN), ("inf", math.inf), ("str", "1e-4")]:
    case("train_head", "lr", label, _train(lr=value))
for label, value in [("neg", -5.0), ("nan", NAN)]:
    case("train_head", "weight_decay", label, _train(weight_decay=value))
for label, value in [("neg", -0.1), ("above-one", 2.0), ("nan", NAN)]:
    case("train_head", "warmup", label, _train(warmup=value))
case("train_head", "grad_clip", "neg", _train(grad_clip=-1.0))
case("train_head", "eps", "zero", _train(eps=0.0))
for label, value in [("above-one", (0.9, 1.5)), ("short", (0.9,)), ("str", "0.9,0.98"), ("nan", (NAN, 0.9))]:
    case("train_head", "betas", label, _train(betas=value))
case("train_head", "precision", "fp16", _train(precision="fp16"))
case("train_head", "precision", "bf16-cpu", _train(precision="bf16"), "bf16")
case("train_head", "recipe", "unknown", _train(epoch=3), "unknown recipe option")
case("train_head", "recipe", "config-field", _train(cache_hash="x"), "unknown recipe option")
for label, value in [("neg", -1), ("float", 0.5), ("str", "0"), ("huge", 2**64), ("bool", True)]:
    case("train_head", "seed", label, _train(seed=value))
for label, value in [("gpu", "gpu"), ("none", None), ("int", 0)]:
    case("train_head", "device", label, _train(device=value))
for label, value in [("unknown", "nosuch"), ("none", None), ("int", 1)]:
    case("train_head", "loss", label, _train(loss=value))
case("train_head", "loss_options", "str", _train(loss_options="temperature=5"))
case("train_head", "loss_options", "nan", _train(loss="dsl", loss_options={"temperature": NAN}),
     "temperature")  # fmt: skip

# ---------------------------------------------------------------- embedding and evaluation
case("embed", "head", "none", lambda e: api.embed(None, e.test))
case("embed", "data", "dict", lambda e: api.embed(e.head, {}))
case("embed", "data", "width", lambda e: api.embed(e.head, e.wide), "embed", "width")
for label, value in [("zero", 0), ("neg", -1), ("str", "8"), ("float", 1.5)]:
    case("embed", "batch", label, lambda e, v=value: api.embed(e.head, e.test, batch=v))
case("embed", "device", "gpu", lambda e: api.embed(e.head, e.test, device="gpu"))
case("evaluate_head", "head", "dict", _eval_head(head={}))
case("evaluate_head", "test", "none", _eval_head(test=None))
case("evaluate_head", "test", "width", lambda e: api.evaluate_head(e.head, e.wide), "evaluate_head", "width")
case("evaluate_head", "bank", "dict", _eval_head(bank={}))
for arg, values in {
    "bank_size": [0, -1, "5", 1.5],
    "dsl_tau": [0.0, NAN, -1.0, "1"],
    "qb_beta": [0.0, NAN],
    "qb_k": [0, -1, 1.5],
    "v2t_protocol": ["nope", None, 3],
    "mdr": ["mean", None],
    "postprocessing": ["raw", (), ("nope",), None],
    "block": [(0, 4), 5, (4,), "x"],
    "progress": [5],
}.items():
    for value in values:
        name = "qb_bank" if arg == "bank_size" else arg
        case("evaluate_head", arg, repr(value), _eval_head(**{arg: value}), "evaluate_head", name)
for arg, value, words in [
    ("text_emb", None, ()), ("text_emb", "x", ()), ("text_emb", torch.randn(4), ()),
    ("text_emb", torch.full((4, 3), NAN), ("NaN",)), ("text_emb", torch.zeros(0, 3), ("empty",)),
    ("video_emb", torch.randn(2, 5), ("width",)), ("video_emb", torch.randn(3, 3), ("query_video",)),
    ("query_video", None, ()), ("query_video", np.array([0, 0, 1]), ()),
    ("query_video", np.array([0.0, 0, 1, 1]), ()), ("query_video", np.array([0, 0, 1, 2]), ("columns",)),
    ("query_video", np.array([0, 0, 0, 0]), ("no caption",)), ("query_video", np.array([0, 0, -1, 1]), ()),
    ("logit_scale", 0.0, ()), ("logit_scale", NAN, ()), ("logit_scale", "100", ()), ("logit_scale", None, ()),
    ("bank_text", torch.randn(5, 3), ("bank_video",)), ("chunk_size", 0, ()), ("dsl_tau", NAN, ()),
    ("qb_k", 0, ()), ("mdr", "x", ()), ("postprocessing", ("raw", "x"), ()), ("progress", 5, ()),
]:  # fmt: skip
    case("evaluate_embeddings", arg, f"{arg}={value!r}"[:40], _emb(**{arg: value}),
         "evaluate_embeddings", *(words or (arg,)))  # fmt: skip
for arg, value, words in [
    ("similarity", None, ()), ("similarity", np.zeros(4), ()), ("similarity", np.full((4, 2), NAN), ("NaN",)),
    ("similarity", [["a", "b"]], ()), ("query_video", [0, 1], ()), ("query_video", "0011", ()),
    ("logit_scale", -1.0, ()), ("dsl_tau", 0.0, ()), ("v2t_protocol", "x", ()),
    ("postprocessing", ("qbnorm",), ("bank",)), ("postprocessing", "raw", ()),
]:  # fmt: skip
    case("evaluate_similarity", arg, f"{arg}={value!r}"[:40], _sim(**{arg: value}),
         "evaluate_similarity", *(words or (arg,)))  # fmt: skip

# ---------------------------------------------------------------- plugins, registries, result files
for label, value in [("none", None), ("int", 5), ("empty", ""), ("list", ["x.py"])]:
    case("load_plugin", "spec", label, lambda e, v=value: api.load_plugin(v))
case("load_plugin", "spec", "missing", lambda e: api.load_plugin(e.tmp / "nope.py"), "no such file")
for fn, register in (("register_head", api.register_head), ("register_loss", api.register_loss),
                     ("register_dataset", api.register_dataset)):  # fmt: skip
    for label, value in [("path", "../../x"), ("slash", "a/b"), ("empty", ""), ("upper", "Meanp"), ("int", 5),
                         ("dot", "a.b"), ("long", "x" * 41)]:  # fmt: skip
        case(fn, "name", label, lambda e, v=value, r=register: r(v), "name")
    case(fn, "object", "not-callable", lambda e, r=register: r("okname")(5), "class or factory")
for label, value in [("none", None), ("int", 5)]:
    case("read_result", "path", label, lambda e, v=value: api.read_result(v))
case("read_result", "path", "missing", lambda e: api.read_result(e.tmp / "nope.json"), "not found")
case("write_result", "path", "none", lambda e: api.write_result(None, {"schema": 1}))
for label, value, words in [
    ("schema-only", {"schema": 1}, ("not a vtrbench result file",)),
    ("none", None, ("not a vtrbench result",)),
    ("list", [], ("not a vtrbench result",)),
    ("bad-schema", {"schema": 2, "run_id": "r", "metrics": {}}, ("schema",)),
]:
    case("write_result", "result", label, lambda e, v=value: api.write_result(e.tmp / "w.json", v), *words)

# ---------------------------------------------------------------- runs
case("run_training", "spec", "none", lambda e: api.run_training(None, 0))
case("run_training", "spec", "dict", lambda e: api.run_training({"head": "meanp"}, 0))
case("run_training", "seed", "neg", lambda e: api.run_training(e.spec, -1))
case("run_training", "checkpoint", "int", lambda e: api.run_training(e.spec, 0, checkpoint=5))
case("run_training", "cache", "str", lambda e: api.run_training(e.spec, 0, cache=str(e.cache_path)))
case("run_training", "data", "list", lambda e: api.run_training(e.spec, 0, data=[]))
case("run_training", "console", "int", lambda e: api.run_training(e.spec, 0, console=5))
for label, value in [("none", None), ("int", 5)]:
    case("run_eval", "cache_path", label, lambda e, v=value: api.run_eval(v, checkpoint=None))
case("run_eval", "cache_path", "missing", lambda e: api.run_eval(e.tmp / "x.h5", checkpoint=None),
     "no feature cache")  # fmt: skip
case("run_eval", "checkpoint", "int", lambda e: api.run_eval(e.cache_path, checkpoint=5))
case("run_eval", "checkpoint", "missing", lambda e: api.run_eval(e.cache_path, checkpoint=e.tmp / "c.pt"),
     "checkpoint not found")  # fmt: skip
case("run_eval", "results_dir", "int", lambda e: api.run_eval(e.cache_path, checkpoint=None, results_dir=5))
case("run_eval", "device", "gpu", lambda e: api.run_eval(e.cache_path, checkpoint=None, device="gpu"))
case("run_eval", "options", "unknown", lambda e: api.run_eval(e.cache_path, checkpoint=None, epochs=3),
     "epochs")  # fmt: skip
for arg, value in [("dsl_tau", 0.0), ("qb_k", 0), ("qb_bank", -1), ("overwrite", "x"), ("mdr", None),
                   ("allow_overlap", "yes"), ("test_split", 5)]:  # fmt: skip
    case("run_eval", arg, repr(value), lambda e, a=arg, v=value: api.run_eval(e.cache_path, checkpoint=None,
         results_dir=e.tmp / "r", **{a: v}), "run_eval", arg)  # fmt: skip
for arg, value in [("epochs", 0), ("batch_size", 1), ("lr", NAN), ("weight_decay", -5.0), ("qb_k", 0),
                   ("device", "gpu"), ("head", "nosuch"), ("loss", None), ("head_options", []),
                   ("loss_options", {"temperature": NAN}), ("cache_path", 5), ("results_dir", None),
                   ("progress", "yes"), ("precision", "fp16")]:  # fmt: skip
    words = {"head": ("nosuch",), "loss": ("loss",), "loss_options": ("temperature",),
             "head_options": ("head",), "cache_path": ("cache_path",),
             "results_dir": ("results_dir",)}  # fmt: skip
    case("RunSpec", arg, repr(value), _spec(**{arg: value}), *words.get(arg, (arg.replace("_", "-"),)))


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
