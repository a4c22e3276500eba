"""Faults of plugins, registered names and the Python API (issue 19): every class, as classes.

* every public function of ``vtrbench.api`` x hostile argument kinds (:data:`API_CASES`, also run
  by tests/top/test_api_hostile.py): one VtrbenchError naming the function and the argument;
* every name check: a plugin registering a head, loss or dataset under a path-like, empty, dotted,
  uppercase or over-long name, and a dataset plugin whose index name would leave ``--results``;
* every plugin failure mode: heads without gradient, with the axes swapped or a wrong shape only on
  real batches, ``describe()`` holding a tensor or NaN; losses that raise, detach or return non-scalars;
  dataset loaders that return None, raise or return malformed indexes;
* provenance: ``eval --checkpoint`` of a plugin head without ``--plugin`` names the plugin, after an
  edit is another run (not "exists"), the same file elsewhere is the same run, a saved grid replays.

Plugins are written into the case's folder and every case runs with the registries restored after
it (cases run in one process).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.faults.core import Case, Context, Outcome, expect_error, expect_ok, run_cli, tiny_cache

AREA = "plugin_api"
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "attnpool" / "vtrbench_attnpool.py"
FAST = ("--epochs", "1", "--batch-size", "8", "--device", "cpu", "--quiet")


# ------------------------------------------------- the API table (shared with tests/top/test_api_hostile.py)


class _Api:
    """``vtrbench.api``, imported on first use (listing cases must not import torch-heavy modules twice)."""

    def __getattr__(self, name: str) -> Any:
        from vtrbench import api as module

        return getattr(module, name)


api = _Api()

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
API_CASES: list[tuple[str, str, str, Call, tuple[str, ...]]] = []


def case(fn: str, arg: str, label: str, call: Call, *words: str) -> None:
    API_CASES.append((fn, arg, label, call, words or (fn, arg)))


# ---------------------------------------------------------------- caches and splits
for label, value in [("none", None), ("int", 5), ("bool", True), ("list", ["a"]), ("empty", "")]:
    case("open_cache", "path", label, lambda e, v=value: api.open_cache(v))
case("open_cache", "path", "missing", lambda e: api.open_cache(e.tmp / "nope.h5"), "no feature cache")
# The class itself, as a user of the API may construct it directly.
for label, value in [("none", None), ("int", 5), ("bytes", b"c.h5"), ("empty", ""), ("blank", "  ")]:
    case("FeatureCache", "path", label, lambda e, v=value: api.FeatureCache(v))
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
    "postprocessing": ["raw", (), ("nope",), ("qbnorm",)],  # None: the defaults the inputs allow (valid)
    "block": [(0, 4), 5, (4,), "x"],
    "progress": [5],
}.items():
    for value in values:
        name = "qb_bank" if arg == "bank_size" else arg
        case("evaluate_head", arg, repr(value), _eval_head(**{arg: value}), "evaluate_head", name)
# seeded: the values' repr is part of each case's name (test ids must be the same in every process,
# e.g. pytest-xdist's workers, which compare their collections)
_CASE_RNG = torch.Generator().manual_seed(0)


def _fixed_randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_CASE_RNG)


for arg, value, words in [
    ("text_emb", None, ()), ("text_emb", "x", ()), ("text_emb", _fixed_randn(4), ()),
    ("text_emb", torch.full((4, 3), NAN), ("NaN",)), ("text_emb", torch.zeros(0, 3), ("empty",)),
    ("video_emb", _fixed_randn(2, 5), ("width",)), ("video_emb", _fixed_randn(3, 3), ("query_video",)),
    ("query_video", None, ()), ("query_video", np.array([0, 0, 1]), ()),
    ("query_video", np.array([0.0, 0, 1, 1]), ()), ("query_video", np.array([0, 0, 1, 2]), ("columns",)),
    ("query_video", np.array([0, 0, 0, 0]), ("no caption",)), ("query_video", np.array([0, 0, -1, 1]), ()),
    ("logit_scale", 0.0, ()), ("logit_scale", NAN, ()), ("logit_scale", "100", ()), ("logit_scale", None, ()),
    ("bank_text", _fixed_randn(5, 3), ("bank_video",)), ("chunk_size", 0, ()), ("dsl_tau", NAN, ()),
    ("qb_k", 0, ()), ("mdr", "x", ()), ("postprocessing", ("raw", "x"), ()), ("progress", 5, ()),
    ("post_options", {"csls_k": 0}, ("csls_k",)), ("post_options", {"nope": 1}, ("nope",)),
    ("post_options", [1], ()),
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

# ---------------------------------------------------------------- search (checked before open_clip is loaded)
for arg, kw in [
    ("cache", {"cache": None}), ("cache", {"cache": 5}), ("cache", {"cache": ""}),
    ("queries", {"queries": 5}), ("queries", {"queries": [1, 2]}), ("queries", {"queries": None}),
    ("checkpoint", {"checkpoint": 5}), ("k", {"k": 0}), ("k", {"k": True}), ("k", {"k": 2.5}),
    ("split", {"split": ""}), ("split", {"split": 3}), ("device", {"device": "tpu"}),
    ("clip_weights", {"clip_weights": 7}),
]:  # fmt: skip
    case("search", arg, f"{arg}={next(iter(kw.values()))!r}"[:40],
         lambda e, kw=kw: api.search(**{"cache": e.cache_path, "queries": "a dog", **kw}),
         "search", arg)  # fmt: skip

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
    ("bad-schema", {"schema": 99, "run_id": "r", "metrics": {}}, ("schema",)),
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


# ---------------------------------------------------------------- isolation and helpers


@contextlib.contextmanager
def _isolated() -> Iterator[None]:
    """Registries, loaded plugins and plugin modules as they were before the case."""
    from vtrbench import plugins

    regs = plugins._registries()
    for reg in regs.values():
        reg.load_builtins()
    saved = {k: (dict(r._entries), dict(r._origins)) for k, r in regs.items()}
    loaded = dict(plugins._LOADED)
    modules = set(sys.modules)
    try:
        yield
    finally:
        for k, r in regs.items():
            r._entries.clear()
            r._entries.update(saved[k][0])
            r._origins.clear()
            r._origins.update(saved[k][1])
        plugins._LOADED.clear()
        plugins._LOADED.update(loaded)
        for name in set(sys.modules) - modules:
            if name.startswith("vtrbench_plugin_"):
                del sys.modules[name]


def _forget_plugins() -> None:
    """As in a new process: the plugins loaded by the case so far are forgotten (built-ins stay)."""
    from vtrbench import plugins

    for reg in plugins._registries().values():
        for name, origin in list(reg._origins.items()):
            if origin.get("kind") != "builtin":
                reg._entries.pop(name, None)
                reg._origins.pop(name, None)
    plugins._LOADED.clear()


def _results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json")) if not p.name.startswith(".")]


def _nothing_written(tmp: Path, run: Any, *mentions: str) -> Outcome:
    outcome = expect_error(run, *mentions)
    if outcome.kind == "clear_error" and list(tmp.rglob("*.json")):
        return Outcome("silently_wrong", f"a result was written despite the error: {outcome.detail}")
    return outcome


def _isolating(run: Callable[[Path, Context], Outcome]) -> Callable[[Path, Context], Outcome]:
    def wrapped(tmp: Path, ctx: Context) -> Outcome:
        with _isolated():
            return run(tmp, ctx)

    return wrapped


# ---------------------------------------------------------------- API cases


def _api_case(fn: str, arg: str, call: Call, words: tuple[str, ...]) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        from vtrbench.errors import VtrbenchError

        env = ctx.once("api-env", lambda folder: Env(tiny_cache(ctx), folder))
        before = sorted(p.name for p in env.tmp.rglob("*"))
        try:
            call(env)
        except VtrbenchError as e:
            message = str(e)
            missing = [w for w in words if w not in message]
            if "\n" in message or missing:
                return Outcome("silently_wrong", f"unclear error (does not name {missing}): {message[:200]}")
            if sorted(p.name for p in env.tmp.rglob("*")) != before:
                return Outcome("silently_wrong", f"files written before the error: {message[:200]}")
            return Outcome("clear_error", message[:200])
        except Exception as e:  # noqa: BLE001 - an internal exception is the finding
            return Outcome("traceback", f"{type(e).__name__}: {e}"[:200])
        return Outcome("silently_wrong", f"{fn}({arg}=hostile) was accepted")

    return run


# ---------------------------------------------------------------- name cases

BAD_NAMES = {
    "escape": "../../../../escaped2",
    "slash": "a/b",
    "empty": "",
    "dot": "a.b",
    "dotdot": "..",
    "upper": "Bad",
    "space": "a b",
    "dash-first": "-x",
    "long": "x" * 41,
    "unicode": "kopf\u00e4",
    "backslash": "a\\\\b",
    "nul": "a\\x00b",
}
REGISTER = {
    "head": "from vtrbench.api import register_head\nfrom vtrbench.heads.meanp import MeanPHead\n"
    "register_head({name!r})(type('X', (MeanPHead,), {{}}))\n",
    "loss": "from vtrbench.api import register_loss\n"
    "register_loss({name!r})(lambda **kw: (lambda l: l.sum()))\n",
    "dataset": "from vtrbench.api import register_dataset\nregister_dataset({name!r})(lambda a, r: None)\n",
}


def _bad_name(kind: str, label: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        name = BAD_NAMES[label].encode().decode("unicode_escape")
        plugin = tmp / f"names_{kind}_{label.replace('-', '_')}.py"
        plugin.write_text(REGISTER[kind].format(name=name))
        r = run_cli(["heads" if kind == "head" else "losses", "--plugin", plugin])
        return _nothing_written(tmp, r, plugin.name, "[a-z0-9][a-z0-9_-]*")

    return run


def _dataset_name_escapes(tmp: Path, ctx: Context) -> Outcome:
    plugin = tmp / "escaping_dataset.py"
    plugin.write_text(
        "from vtrbench.api import DatasetIndex, register_dataset\n@register_dataset('escaping')\n"
        "def load(a, r):\n    return DatasetIndex('../../outside', [], [], {}, None, 'test')\n"
    )
    r = run_cli(
        [
            "extract",
            "--plugin",
            plugin,
            "--dataset",
            "escaping",
            "--annotations",
            tmp,
            "--model",
            "vtrbench-tiny",
            "--pretrained",
            "none",
            "--device",
            "cpu",
            "--quiet",
            "--output",
            tmp / "c.h5",
        ]
    )
    outcome = _nothing_written(tmp, r, plugin.name, "outside")
    if outcome.kind == "clear_error" and (tmp / "c.h5").exists():
        return Outcome("silently_wrong", "a cache was written for an index named '../../outside'")
    return outcome


def _result_path_escape(tmp: Path, ctx: Context) -> Outcome:
    from vtrbench.errors import VtrbenchError
    from vtrbench.results import result_path

    (tmp / "results").mkdir()
    (tmp / "results" / "linked").symlink_to(tmp)
    for dataset, rid in (("../x", "r"), ("a/b", "r"), ("linked", "r"), ("ok", "../../r"), ("", "r")):
        try:
            path = result_path(tmp / "results", dataset, rid)
        except VtrbenchError:
            continue
        return Outcome("silently_wrong", f"result_path({dataset!r}, {rid!r}) gave {path}")
    return Outcome("clear_error", "every escaping dataset/run id refused")


# ---------------------------------------------------------------- plugin failure modes

HEAD_PRELUDE = (
    "import torch\nfrom vtrbench.api import Head, register_head\nfrom vtrbench.heads.meanp import MeanPHead\n"
)
CLS = "@register_head('bad')\nclass B(MeanPHead):\n"
FAILING_HEADS = {
    "frozen": (
        CLS + "    def __init__(self, **kw):\n        super().__init__(**kw)\n"
        "        for p in self.parameters():\n            p.requires_grad_(False)\n",
        "no trainable parameters",
    ),
    "frozen-but-scale": (
        CLS + "    def training_logits(self, text, video):\n"
        "        return self.score(text, video).detach() * 100, []\n",
        "without a gradient",
    ),
    "detached": (
        CLS + "    def training_logits(self, text, video):\n"
        "        logits, aux = super().training_logits(text, video)\n        return logits.detach(), aux\n",
        "without a gradient",
    ),
    "describe-tensor": (
        CLS + "    def describe(self):\n        return {'w': torch.ones(2)}\n",
        "describe()",
    ),
    "describe-nan": (
        CLS + "    def describe(self):\n        return {'w': float('nan')}\n",
        "describe()",
    ),
    "describe-not-dict": (
        CLS + "    def describe(self):\n        return [1]\n",
        "describe()",
    ),
    "describe-raises": (
        CLS + "    def describe(self):\n        raise KeyError('x')\n",
        "describe()",
    ),
    "transposed": (
        CLS + "    def training_logits(self, text, video):\n"
        "        logits, aux = super().training_logits(text, video)\n        return logits.t(), aux\n",
        "logits of shape",
    ),
    "square-only": (
        CLS + "    def training_logits(self, text, video):\n"
        "        logits, aux = super().training_logits(text, video)\n"
        "        return logits[:, :1].expand(-1, logits.shape[0]), aux\n",
        "logits of shape",
    ),
    "big-batch": (
        CLS + "    def training_logits(self, text, video):\n"
        "        logits, aux = super().training_logits(text, video)\n"
        "        return (logits[:, :7] if logits.shape[1] >= 8 else logits), aux\n",
        "logits of shape (8, 7)",
    ),
    "bad-aux": (
        CLS + "    def training_logits(self, text, video):\n"
        "        logits, aux = super().training_logits(text, video)\n        return logits, [logits[:1]]\n",
        "auxiliary",
    ),
    "returns-tuple-of-one": (
        CLS + "    def training_logits(self, text, video):\n"
        "        return super().training_logits(text, video)[0]\n",
        "failed on a dry batch",
    ),
    "init-raises": (
        CLS + "    def __init__(self, **kw):\n        raise RuntimeError('no')\n",
        "bad",
    ),
}
FAILING_LOSSES = {
    "detached": ("return lambda logits: logits.detach().sum()", "without a gradient"),
    "non-scalar": ("return lambda logits: logits.sum(0)", "scalar"),
    "raises": ("return lambda logits: {}['x']", "failed on a dry"),
    "nan": ("return lambda logits: logits.sum() * float('nan')", "nan"),
    "not-a-tensor": ("return lambda logits: 1.0", "scalar"),
}
FAILING_DATASETS = {
    "returns-none": ("    return None\n", "returned NoneType"),
    "raises-keyerror": ("    return {}['videos']\n", "KeyError"),
    "raises-systemexit-free": ("    raise ValueError('bad annotations')\n", "ValueError"),
    "returns-dict": ("    return {'videos': []}\n", "not a vtrbench DatasetIndex"),
    "videos-none": (
        "    return DatasetIndex('mydata', None, [], {}, None, 'test')\n",
        "videos must be a list of VideoEntry",
    ),
    "caption-int": (
        "    from vtrbench.datasets.base import VideoEntry, TextEntry, Split\n"
        "    return DatasetIndex('mydata', [VideoEntry('v', 'v.mp4')], [TextEntry('v', 5)],\n"
        "                        {'test': Split(('v',), (0,))}, None, 'test')\n",
        "mydata",
    ),
    "path-none": (
        "    from vtrbench.datasets.base import VideoEntry, TextEntry, Split\n"
        "    return DatasetIndex('mydata', [VideoEntry('v', None)], [TextEntry('v', 'a cat')],\n"
        "                        {'test': Split(('v',), (0,))}, None, 'test')\n",
        "path a str or Path",
    ),
    "max-words-str": (
        "    from vtrbench.datasets.base import VideoEntry, TextEntry, Split\n"
        "    return DatasetIndex('mydata', [VideoEntry('v', 'v.mp4')], [TextEntry('v', 'a cat')],\n"
        "                        {'test': Split(('v',), (0,))}, None, 'test', max_words='32')\n",
        "max_words",
    ),
    "default-test-unknown": (
        "    from vtrbench.datasets.base import VideoEntry, TextEntry, Split\n"
        "    return DatasetIndex('mydata', [VideoEntry('v', 'v.mp4')], [TextEntry('v', 'a cat')],\n"
        "                        {'test': Split(('v',), (0,))}, None, 'val')\n",
        "default_test 'val'",
    ),
}


def _failing_head(label: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        body, message = FAILING_HEADS[label]
        plugin = tmp / f"head_{label.replace('-', '_')}.py"
        plugin.write_text(HEAD_PRELUDE + body)
        r = run_cli(
            [
                "train",
                "--plugin",
                plugin,
                "--cache",
                tiny_cache(ctx),
                "--head",
                "bad",
                "--loss",
                "infonce",
                "--results",
                tmp / "results",
                *FAST,
            ]
        )
        return _nothing_written(tmp, r, plugin.name, message)

    return run


def _failing_loss(label: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        body, message = FAILING_LOSSES[label]
        plugin = tmp / f"loss_{label.replace('-', '_')}.py"
        plugin.write_text(
            f"from vtrbench.api import register_loss\n@register_loss('bad')\ndef make(**kw):\n    {body}\n"
        )
        r = run_cli(
            [
                "train",
                "--plugin",
                plugin,
                "--cache",
                tiny_cache(ctx),
                "--head",
                "meanp",
                "--loss",
                "bad",
                "--results",
                tmp / "results",
                *FAST,
            ]
        )
        return _nothing_written(tmp, r, plugin.name, message)

    return run


def _failing_dataset(label: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        body, message = FAILING_DATASETS[label]
        plugin = tmp / f"data_{label.replace('-', '_')}.py"
        plugin.write_text(
            "from vtrbench.api import DatasetIndex, register_dataset\n@register_dataset('mydata')\n"
            "def load(annotations, root):\n" + body
        )
        r = run_cli(
            [
                "extract",
                "--plugin",
                plugin,
                "--dataset",
                "mydata",
                "--annotations",
                tmp,
                "--model",
                "vtrbench-tiny",
                "--pretrained",
                "none",
                "--device",
                "cpu",
                "--quiet",
                "--output",
                tmp / "c.h5",
            ]
        )
        outcome = _nothing_written(tmp, r, plugin.name, message)
        if outcome.kind == "clear_error" and (tmp / "c.h5").exists():
            return Outcome("silently_wrong", "a cache was written despite the error")
        return outcome

    return run


# ---------------------------------------------------------------- provenance


def _train_attnpool(ctx: Context, plugin: Path, results: Path, *extra: Any) -> Any:
    return run_cli(
        [
            "train",
            "--plugin",
            plugin,
            "--cache",
            tiny_cache(ctx),
            "--head",
            "attnpool",
            "--loss",
            "infonce",
            "--results",
            results,
            *FAST,
            *extra,
        ]
    )


def _eval_argv(ctx: Context, plugin: Path | None, ckpt: Path, results: Path) -> list[Any]:
    extra = ["--plugin", plugin] if plugin is not None else []
    return [
        "eval",
        *extra,
        "--cache",
        tiny_cache(ctx),
        "--checkpoint",
        ckpt,
        "--results",
        results,
        "--device",
        "cpu",
    ]


def _checkpoint(tmp: Path, ctx: Context) -> tuple[Path, Path, Any]:
    plugin = Path(shutil.copy(EXAMPLE, tmp / "attnpool.py"))
    ckpt = tmp / "head.pt"
    r = _train_attnpool(ctx, plugin, tmp / "trained", "--save-checkpoint", ckpt)
    _forget_plugins()
    return plugin, ckpt, r


def _eval_without_plugin(tmp: Path, ctx: Context) -> Outcome:
    plugin, ckpt, r = _checkpoint(tmp, ctx)
    if r.code != 0:
        return expect_ok(r)
    run = run_cli(_eval_argv(ctx, None, ckpt, tmp / "evals"))
    outcome = expect_error(run, "attnpool", "0.1.0", f"--plugin {plugin.resolve()}")
    if outcome.kind == "clear_error" and "damaged" in run.err:
        return Outcome("silently_wrong", f"calls the checkpoint damaged: {outcome.detail}")
    return outcome


def _eval_after_plugin_edit(tmp: Path, ctx: Context) -> Outcome:
    plugin, ckpt, r = _checkpoint(tmp, ctx)
    if r.code != 0:
        return expect_ok(r)
    first = run_cli(_eval_argv(ctx, plugin, ckpt, tmp / "evals"))
    if first.code != 0:
        return expect_ok(first)
    _forget_plugins()
    plugin.write_text(plugin.read_text().replace("F.normalize((weights", "-F.normalize((weights"))
    second = run_cli(_eval_argv(ctx, plugin, ckpt, tmp / "evals"))

    def check() -> str | None:
        runs = _results(tmp / "evals")
        shas = {x["config"].get("plugins", {}).get("head", {}).get("sha256") for x in runs}
        want = {hashlib.sha256(p).hexdigest() for p in (EXAMPLE.read_bytes(), plugin.read_bytes())}
        if "skip" in second.text.lower():
            return "the edited plugin's eval was skipped as already done"
        if len(runs) != 2 or shas != want:
            return f"expected two runs with the two plugin hashes, got {len(runs)} runs, {shas}"
        if any(not x["provenance"]["plugins"].get("head", {}).get("source") for x in runs):
            return "provenance.plugins.head has no source"
        return None

    return expect_ok(second, check)


def _same_file_elsewhere(tmp: Path, ctx: Context) -> Outcome:
    a = Path(shutil.copy(EXAMPLE, tmp / "attnpool.py"))
    (tmp / "b").mkdir()
    b = Path(shutil.copy(EXAMPLE, tmp / "b" / "attnpool.py"))
    first = _train_attnpool(ctx, a, tmp / "results")
    if first.code != 0:
        return expect_ok(first)
    _forget_plugins()
    second = _train_attnpool(ctx, b, tmp / "results")
    return expect_ok(
        second,
        lambda: (
            None
            if len(_results(tmp / "results")) == 1
            else "the same plugin file at another path made a second run id"
        ),
    )


def _grid_replay(tmp: Path, ctx: Context) -> Outcome:
    plugin = Path(shutil.copy(EXAMPLE, tmp / "attnpool.py"))
    results = tmp / "results"
    first = run_cli(
        [
            "ablate",
            "--plugin",
            plugin,
            "--cache",
            tiny_cache(ctx),
            "--heads",
            "attnpool",
            "--losses",
            "infonce",
            "--seeds",
            "0",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--results",
            results,
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    if first.code != 0:
        return expect_ok(first)
    saved = sorted(results.rglob("grid-*.toml"))
    if len(saved) != 1:
        return Outcome("silently_wrong", f"expected one saved grid file, found {len(saved)}")
    _forget_plugins()
    replay = run_cli(
        [
            "ablate",
            "--cache",
            tiny_cache(ctx),
            "--grid",
            saved[0],
            "--results",
            results,
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    return expect_ok(replay, lambda: None if len(_results(results)) == 1 else "the replay made another run")


# ---------------------------------------------------------------- the list

QUICK_API = {
    ("train_head", "batch_size", "one"),
    ("train_head", "epochs", "zero"),
    ("create_head", "embed_dim", "zero"),
    ("create_loss", "temperature", "nan"),
    ("write_result", "result", "schema-only"),
}


def cases() -> list[Case]:
    out: list[Case] = []
    for fn, arg, label, call, words in API_CASES:
        name = f"api/{fn}/{arg}/{label}".replace(" ", "")
        out.append(
            Case(AREA, name, _isolating(_api_case(fn, arg, call, words)), quick=(fn, arg, label) in QUICK_API)
        )
    for kind in REGISTER:
        for label in BAD_NAMES:
            quick = kind == "head" and label in ("escape", "empty")
            out.append(Case(AREA, f"name/{kind}/{label}", _isolating(_bad_name(kind, label)), quick=quick))
    out.append(Case(AREA, "name/dataset-index-escapes", _isolating(_dataset_name_escapes), quick=False))
    out.append(Case(AREA, "name/result-path-escapes", _result_path_escape, quick=True))
    for label in FAILING_HEADS:
        out.append(
            Case(AREA, f"plugin-head/{label}", _isolating(_failing_head(label)), quick=label == "detached")
        )
    for label in FAILING_LOSSES:
        out.append(Case(AREA, f"plugin-loss/{label}", _isolating(_failing_loss(label)), quick=False))
    for label in FAILING_DATASETS:
        quick = label == "returns-none"
        out.append(Case(AREA, f"plugin-dataset/{label}", _isolating(_failing_dataset(label)), quick=quick))
    for name, run in (
        ("eval-checkpoint-without-plugin", _eval_without_plugin),
        ("eval-after-plugin-edit", _eval_after_plugin_edit),
        ("same-plugin-file-elsewhere", _same_file_elsewhere),
        ("ablate-grid-replay", _grid_replay),
    ):
        out.append(Case(AREA, f"provenance/{name}", _isolating(run), quick=False))
    return out
