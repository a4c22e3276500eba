"""Plugins: a head from a file, a module or an installed entry point, next to the built-ins.

The example plugin (examples/attnpool) is trained through the real CLI; broken plugins must
fail with one line naming the plugin, before any training starts.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vtrbench import plugins

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "attnpool" / "vtrbench_attnpool.py"
FAST = ["--epochs", "2", "--batch-size", "8", "--device", "cpu", "--quiet"]


@pytest.fixture(autouse=True)
def isolated_registries() -> Iterator[None]:
    """Each test starts with the built-ins only: plugins loaded by a test are forgotten after it."""
    regs = plugins._registries()
    for reg in regs.values():
        reg.load_builtins()
    saved = {k: (dict(r._entries), dict(r._origins)) for k, r in regs.items()}
    loaded = dict(plugins._LOADED)
    modules = set(sys.modules)
    yield
    for k, r in regs.items():
        r._entries.clear()
        r._entries.update(saved[k][0])
        r._origins.clear()
        r._origins.update(saved[k][1])
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    for name in set(sys.modules) - modules:
        if "attnpool" in name or name.startswith("vtrbench_plugin_"):
            del sys.modules[name]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _results(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json")) if p.parent.name != "grids"]


def test_plugin_file_trains_next_to_builtins_with_provenance(
    run_cli, synth_cache: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    r = run_cli(
        "train",
        "--plugin",
        EXAMPLE,
        "--cache",
        synth_cache,
        "--head",
        "attnpool",
        "--loss",
        "infonce",
        "--results",
        results,
        *FAST,
    )
    assert r.code == 0, r.text
    (res,) = [x for x in _results(results) if x.get("head") == "attnpool"]
    origin = res["provenance"]["plugins"]["head"]
    assert origin["kind"] == "file" and origin["version"] == "0.1.0"
    assert origin["sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert res["config"]["plugins"]["head"]["sha256"] == origin["sha256"]
    assert res["label"] == "attnpool [0.1.0]"
    assert len(res["history"]) == 2 and all(h["loss"] == h["loss"] for h in res["history"])  # no NaN


def test_two_versions_of_a_plugin_are_two_runs_not_two_seeds(
    run_cli, synth_cache: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    v1 = shutil.copy(EXAMPLE, tmp_path / "attnpool_v1.py")
    v2 = _write(tmp_path / "attnpool_v2.py", EXAMPLE.read_text().replace('"0.1.0"', '"0.2.0"'))
    for plugin in (v1, v2):
        plugins._LOADED.clear()
        plugins._registries()["head"]._entries.pop("attnpool", None)
        r = run_cli(
            "train",
            "--plugin",
            plugin,
            "--cache",
            synth_cache,
            "--head",
            "attnpool",
            "--loss",
            "infonce",
            "--results",
            results,
            *FAST,
        )
        assert r.code == 0, r.text
        assert "skipped" not in r.text  # the second version is not mistaken for the first
    runs = _results(results)
    assert len({x["run_id"] for x in runs}) == 2
    assert sorted(x["label"] for x in runs) == ["attnpool [0.1.0]", "attnpool [0.2.0]"]


def test_entry_point_plugin_is_found_lazily(run_cli, synth_cache: Path, tmp_path: Path, monkeypatch) -> None:
    site = tmp_path / "site"
    dist = site / "vtrbench_attnpool-0.1.0.dist-info"
    dist.mkdir(parents=True)
    shutil.copy(EXAMPLE, site / "vtrbench_attnpool.py")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vtrbench-attnpool\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        "[vtrbench.heads]\nattnpool = vtrbench_attnpool:AttentionPoolHead\n"
    )
    monkeypatch.syspath_prepend(str(site))
    assert "vtrbench_attnpool" not in sys.modules
    heads = run_cli("heads")
    assert "attnpool" in heads.out and "vtrbench_attnpool" not in sys.modules  # listed, not imported
    results = tmp_path / "results"
    r = run_cli(
        "train",
        "--cache",
        synth_cache,
        "--head",
        "attnpool",
        "--loss",
        "infonce",
        "--results",
        results,
        *FAST,
    )
    assert r.code == 0, r.text
    (res,) = _results(results)
    origin = res["provenance"]["plugins"]["head"]
    assert (origin["kind"], origin["name"], origin["version"]) == (
        "entry point",
        "vtrbench-attnpool",
        "0.1.0",
    )
    assert origin["sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    listed = run_cli("heads").out
    assert "attnpool  entry point vtrbench-attnpool 0.1.0" in listed
    assert "\nmeanp  built in\n" in listed  # built-ins say so too


def test_entry_point_with_a_bad_name_is_listed_as_unusable(run_cli, tmp_path: Path, monkeypatch) -> None:
    site = tmp_path / "site"
    dist = site / "vtrbench_badname-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vtrbench-badname\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[vtrbench.heads]\nBad.Name = vtrbench_badname:Head\n")
    monkeypatch.syspath_prepend(str(site))
    listed = run_cli("heads")
    assert listed.code == 0, listed.text
    line = next(x for x in listed.out.splitlines() if "Bad.Name" in x)
    assert line.startswith("'Bad.Name'") and "unusable" in line and "vtrbench-badname" in line
    assert "\nBad.Name  " not in listed.out  # never offered as a usable name
    r = run_cli("train", "--cache", tmp_path / "c.h5", "--head", "Bad.Name", "--loss", "infonce")
    assert r.code != 0 and "Traceback" not in r.text and len(r.err.strip().splitlines()) == 1, r.text


def test_grid_file_lists_plugins_and_report_shows_them(run_cli, synth_cache: Path, tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "attnpool.py")
    grid = _write(
        tmp_path / "grid.toml",
        'plugins = ["attnpool.py"]\nheads = ["meanp", "camoe", "attnpool"]\n'
        'losses = ["infonce"]\nseeds = [0]\n[train]\nepochs = 2\nbatch_size = 8\n',
    )
    results = tmp_path / "results"
    r = run_cli(
        "ablate", "--cache", synth_cache, "--grid", grid, "--results", results, "--device", "cpu", "--quiet"
    )
    assert r.code == 0, r.text
    assert sorted(x["head"] for x in _results(results)) == ["attnpool", "camoe", "meanp"]
    rep = run_cli("report", results, "--baseline", "meanp + infonce", "--n-boot", "50")
    assert rep.code == 0, rep.text
    assert "attnpool [0.1.0]" in rep.text


BROKEN = {
    "import-error": ("import no_such_module_xyz\n", "ModuleNotFoundError"),
    "clash": (
        "from vtrbench.api import register_head\nfrom vtrbench.heads.meanp import MeanPHead\n"
        "register_head('camoe')(type('X', (MeanPHead,), {}))\n",
        "'camoe', which is already registered (built in)",
    ),
    "nothing": ("x = 1\n", "registered nothing"),
    "wrong-shape": (
        "import torch\nfrom vtrbench.api import Head, register_head\n"
        "@register_head('badshape')\nclass B(Head):\n"
        "    def training_logits(self, text, video):\n        return torch.zeros(3), []\n",
        "shape (3,)",
    ),
    "nan": (
        "import torch\nfrom vtrbench.api import Head, register_head\n"
        "@register_head('badshape')\nclass B(Head):\n"
        "    def encode_text(self, b):\n        return torch.full((b['tokens'].shape[0], 4), float('nan'))\n"
        "    def encode_video(self, b):\n        return torch.ones(b['frames'].shape[0], 4)\n",
        "non-finite",
    ),
    "raises": (
        "from vtrbench.api import Head, register_head\n"
        "@register_head('badshape')\nclass B(Head):\n    pass\n",
        "failed on a dry batch: NotImplementedError",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_plugin_is_one_line_naming_it_before_training(
    run_cli, synth_cache: Path, tmp_path: Path, case: str
) -> None:
    source, message = BROKEN[case]
    plugin = _write(tmp_path / f"broken_{case.replace('-', '_')}.py", source)
    results = tmp_path / "results"
    r = run_cli(
        "train",
        "--plugin",
        plugin,
        "--cache",
        synth_cache,
        "--head",
        "badshape",
        "--loss",
        "infonce",
        "--results",
        results,
        *FAST,
    )
    assert r.code == 2, r.text
    assert "Traceback" not in r.text
    (line,) = [ln for ln in r.err.splitlines() if ln.strip()]
    assert line.startswith("error:") and plugin.name in line and message in line, line
    assert not results.exists() or not list(results.rglob("*.json"))


def test_plugin_loss_is_checked_and_recorded(run_cli, synth_cache: Path, tmp_path: Path) -> None:
    detached = _write(
        tmp_path / "detached_loss.py",
        "import torch\nfrom vtrbench.api import register_loss\n"
        "@register_loss('detached')\ndef make(**kw):\n    return lambda logits: logits.detach().sum()\n",
    )
    r = run_cli(
        "train",
        "--plugin",
        detached,
        "--cache",
        synth_cache,
        "--head",
        "meanp",
        "--loss",
        "detached",
        "--results",
        tmp_path / "r1",
        *FAST,
    )
    assert r.code == 2 and "without a gradient" in r.err and "detached_loss.py" in r.err, r.text
    good = _write(
        tmp_path / "hinge_loss.py",
        "import torch\nfrom vtrbench.api import register_loss\n__version__ = '2.0'\n"
        "@register_loss('hinge')\ndef make(margin: float = 0.2):\n"
        "    def loss(logits):\n        d = logits.diag()\n"
        "        return (margin + logits / 100 - d[:, None] / 100).clamp(min=0).mean()\n    return loss\n",
    )
    results = tmp_path / "r2"
    r = run_cli(
        "train",
        "--plugin",
        good,
        "--cache",
        synth_cache,
        "--head",
        "meanp",
        "--loss",
        "hinge",
        "--results",
        results,
        *FAST,
    )
    assert r.code == 0, r.text
    (res,) = _results(results)
    assert res["provenance"]["plugins"]["loss"]["version"] == "2.0"
    assert "head" not in res["provenance"]["plugins"]  # meanp is built in


def test_missing_plugin_file_and_module(run_cli, tmp_path: Path) -> None:
    r = run_cli("heads", "--plugin", tmp_path / "nope.py")
    assert r.code == 2 and "nope.py: no such file" in r.err
    r = run_cli("heads", "--plugin", "no_such_pkg_abc.mod")
    assert r.code == 2 and "no_such_pkg_abc.mod: no such module" in r.err


def test_builtin_configs_keep_their_hash() -> None:
    """The plugins field is left out of the canonical config while empty (old run ids stay valid)."""
    from vtrbench.config import TrainConfig, canonical_json

    plain = json.loads(canonical_json(TrainConfig(cache_hash="c", head="meanp", loss="dsl")))
    assert "plugins" not in plain
    plain = json.loads(
        canonical_json(TrainConfig(cache_hash="c", head="x", loss="dsl", plugins={"head": {"v": 1}}))
    )
    assert plain["plugins"] == {"head": {"v": 1}}


# ---------------------------------------------------------- issue 19: provenance of eval, replay, identity


def _forget(name: str = "attnpool") -> None:
    """As in a new process: no plugin loaded, ``name`` not registered."""
    plugins._LOADED.clear()
    plugins._registries()["head"]._entries.pop(name, None)
    plugins._registries()["head"]._origins.pop(name, None)


def _train_attnpool(run_cli, plugin: Path, cache: Path, results: Path, *extra) -> object:
    return run_cli(
        "train", "--plugin", plugin, "--cache", cache, "--head", "attnpool", "--loss", "infonce",
        "--results", results, *FAST, *extra,
    )  # fmt: skip


def test_eval_of_a_plugin_checkpoint_records_the_plugin_and_names_it_when_missing(
    run_cli, synth_cache: Path, tmp_path: Path
) -> None:
    plugin = shutil.copy(EXAMPLE, tmp_path / "attnpool.py")
    ckpt = tmp_path / "head.pt"
    r = _train_attnpool(run_cli, plugin, synth_cache, tmp_path / "trained", "--save-checkpoint", ckpt)
    assert r.code == 0, r.text
    _forget()
    # without --plugin: the error names the plugin to load, not a "damaged checkpoint"
    r = run_cli(
        "eval", "--cache", synth_cache, "--checkpoint", ckpt, "--results", tmp_path / "r", "--device", "cpu"
    )
    assert r.code == 2 and "damaged" not in r.err, r.text
    assert "attnpool" in r.err and "0.1.0" in r.err and f"--plugin {Path(plugin).resolve()}" in r.err, r.err
    results = tmp_path / "evals"
    argv = ["eval", "--cache", synth_cache, "--checkpoint", ckpt, "--results", results, "--device", "cpu"]
    r = run_cli(argv[0], "--plugin", plugin, *argv[1:])
    assert r.code == 0, r.text
    (first,) = _results(results)
    sha = hashlib.sha256(Path(plugin).read_bytes()).hexdigest()
    assert first["config"]["plugins"]["head"]["sha256"] == sha
    assert first["provenance"]["plugins"]["head"]["source"] == str(Path(plugin).resolve())
    assert "source" not in first["config"]["plugins"]["head"]  # the path is provenance, not identity
    # the same file evaluated again is the same run: skipped
    _forget()
    r = run_cli(argv[0], "--plugin", plugin, *argv[1:])
    assert r.code == 0 and "skip" in r.text.lower(), r.text
    # an edited plugin is another run, not the finished one (a warning says the code changed)
    _forget()
    Path(plugin).write_text(Path(plugin).read_text() + "\n# edited: scores may differ now\n")
    r = run_cli(argv[0], "--plugin", plugin, *argv[1:])
    assert r.code == 0 and "skip" not in r.text.lower(), r.text
    assert "trained with plugin" in r.text
    runs = _results(results)
    assert len({x["run_id"] for x in runs}) == 2
    assert {x["config"]["plugins"]["head"]["sha256"] for x in runs} == {
        sha,
        hashlib.sha256(Path(plugin).read_bytes()).hexdigest(),
    }


def test_same_plugin_file_at_another_path_is_the_same_run(run_cli, synth_cache: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    a = shutil.copy(EXAMPLE, tmp_path / "attnpool.py")
    (tmp_path / "elsewhere").mkdir()
    b = shutil.copy(EXAMPLE, tmp_path / "elsewhere" / "attnpool.py")
    assert _train_attnpool(run_cli, a, synth_cache, results).code == 0
    _forget()
    r = _train_attnpool(run_cli, b, synth_cache, results)
    assert r.code == 0 and "skip" in r.text.lower(), r.text
    assert len(_results(results)) == 1


def test_grid_saved_by_ablate_with_plugin_replays(run_cli, synth_cache: Path, tmp_path: Path) -> None:
    plugin = shutil.copy(EXAMPLE, tmp_path / "attnpool.py")
    results = tmp_path / "results"
    r = run_cli(
        "ablate", "--plugin", plugin, "--cache", synth_cache, "--heads", "meanp,attnpool", "--losses",
        "infonce", "--seeds", "0", "--epochs", "1", "--batch-size", "8", "--results", results,
        "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert r.code == 0, r.text
    (saved,) = results.rglob("grid-*.toml")
    assert f'plugins = ["{Path(plugin).resolve()}"]' in saved.read_text()
    _forget()
    r = run_cli(
        "ablate", "--cache", synth_cache, "--grid", saved, "--results", results, "--device", "cpu", "--quiet"
    )
    assert r.code == 0, r.text
    assert len([x for x in _results(results) if x["head"] == "attnpool"]) == 1  # replayed = skipped


# ------------------------------------------------------------------ issue 19: names


@pytest.mark.parametrize(
    "name", ["../../../../escaped2", "a/b", "", "A", "a.b", "a b", "-x", "x" * 41, "ä", "a\\b", 5]
)
def test_registered_names_are_plain_identifiers(name: object) -> None:
    from vtrbench.api import VtrbenchError, register_dataset, register_head, register_loss

    for register in (register_head, register_loss, register_dataset):
        with pytest.raises(VtrbenchError, match="name"):
            register(name)


def test_every_builtin_name_is_a_plain_identifier() -> None:
    from vtrbench.registry import name_problem

    for kind, reg in plugins._registries().items():
        for name in reg.names():
            assert name_problem(name) is None, (kind, name)


def test_plugin_with_a_path_as_name_is_one_line_and_writes_nothing(
    run_cli, synth_cache: Path, tmp_path: Path
) -> None:
    plugin = _write(
        tmp_path / "escape.py",
        "from vtrbench.api import register_head\nfrom vtrbench.heads.meanp import MeanPHead\n"
        "register_head('../../../../escaped2')(type('X', (MeanPHead,), {}))\n",
    )
    results = tmp_path / "deep" / "er" / "results"
    r = run_cli("train", "--plugin", plugin, "--cache", synth_cache, "--head", "meanp", "--loss", "infonce",
                "--results", results, *FAST)  # fmt: skip
    assert r.code == 2 and "escape.py" in r.err and "[a-z0-9][a-z0-9_-]*" in r.err, r.text
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("dataset", ["../x", "a/b", "..", ".hidden", ""])
def test_result_path_stays_inside_results(tmp_path: Path, dataset: str) -> None:
    from vtrbench.errors import VtrbenchError
    from vtrbench.results import result_path

    with pytest.raises(VtrbenchError):
        result_path(tmp_path, dataset, "synthetic.meanp.infonce.0123abcd.s0")
    with pytest.raises(VtrbenchError):
        result_path(tmp_path, "synthetic", f"{dataset}/x" if dataset else "")
    link = tmp_path / "linked"
    link.symlink_to(tmp_path.parent)
    with pytest.raises(VtrbenchError, match="outside"):
        result_path(tmp_path, "linked", "x")
    assert result_path(tmp_path, "synthetic", "r").parent == tmp_path / "synthetic"


# ---------------------------------------------------------- issue 19: plugin failure modes, one line each

HEAD_PRELUDE = (
    "import torch\nfrom vtrbench.api import Head, register_head\nfrom vtrbench.heads.meanp import MeanPHead\n"
)
FAILING_HEADS = {
    "frozen": (
        "@register_head('bad')\nclass B(MeanPHead):\n    def __init__(self, **kw):\n"
        "        super().__init__(**kw)\n"
        "        for p in self.parameters():\n            p.requires_grad_(False)\n",
        "no trainable parameters",
    ),
    "detached": (
        "@register_head('bad')\nclass B(MeanPHead):\n    def training_logits(self, text, video):\n"
        "        logits, aux = super().training_logits(text, video)\n        return logits.detach(), aux\n",
        "without a gradient",
    ),
    "describe-tensor": (
        "@register_head('bad')\nclass B(MeanPHead):\n    def describe(self):\n"
        "        return {'w': torch.ones(2)}\n",
        "describe() must return plain JSON data",
    ),
    "describe-nan": (
        "@register_head('bad')\nclass B(MeanPHead):\n    def describe(self):\n"
        "        return {'w': float('nan')}\n",
        "describe() must return plain JSON data",
    ),
    "transposed": (  # right only when captions == videos, as in the old 2-item dry batch
        "@register_head('bad')\nclass B(MeanPHead):\n    def training_logits(self, text, video):\n"
        "        logits, aux = super().training_logits(text, video)\n        return logits.t(), aux\n",
        "shape (2, 3) for 3 captions x 2 videos",
    ),
    "big-batch": (  # passes every dry batch; wrong on real batches of 8: caught at the first step
        "@register_head('bad')\nclass B(MeanPHead):\n    def training_logits(self, text, video):\n"
        "        logits, aux = super().training_logits(text, video)\n"
        "        return (logits[:, :7] if logits.shape[1] >= 8 else logits), aux\n",
        "shape (8, 7) for 8 captions x 8 videos",
    ),
}


@pytest.mark.parametrize("case", sorted(FAILING_HEADS))
def test_plugin_head_failures_are_one_line_naming_the_plugin(
    run_cli, synth_cache: Path, tmp_path: Path, case: str
) -> None:
    body, message = FAILING_HEADS[case]
    plugin = _write(tmp_path / f"head_{case.replace('-', '_')}.py", HEAD_PRELUDE + body)
    results = tmp_path / "results"
    r = run_cli("train", "--plugin", plugin, "--cache", synth_cache, "--head", "bad", "--loss", "infonce",
                "--results", results, *FAST)  # fmt: skip
    assert r.code == 2 and "Traceback" not in r.text, r.text
    (line,) = [ln for ln in r.err.splitlines() if ln.strip()]
    assert line.startswith("error:") and plugin.name in line and message in line, line
    assert not list(tmp_path.rglob("*.json"))


def test_plugin_dry_check_leaves_rng_and_buffers_alone() -> None:
    import torch

    from vtrbench.api import create_head, register_head
    from vtrbench.heads.meanp import MeanPHead

    class Noisy(MeanPHead):
        def __init__(self, **kw) -> None:
            super().__init__(**kw)
            self.norm = torch.nn.BatchNorm1d(1)

        def training_logits(self, text, video):
            logits, aux = super().training_logits(text, video)
            noise = torch.rand(())  # draws from the global RNG
            self.norm(logits.reshape(-1, 1))
            return logits + 0 * noise, aux

    register_head("noisydry")(Noisy)
    plugins._registries()["head"]._origins["noisydry"] = {"kind": "file", "source": "x.py"}
    torch.manual_seed(3)
    head = create_head("noisydry", embed_dim=8)  # construction + dry runs
    after = torch.rand(3)
    torch.manual_seed(3)
    Noisy(embed_dim=8)  # construction only
    assert torch.equal(after, torch.rand(3))
    assert float(head.norm.running_mean) == 0.0 and int(head.norm.num_batches_tracked) == 0


DATASET_PRELUDE = "from vtrbench.api import register_dataset\n"
FAILING_DATASETS = {
    "returns-none": ("@register_dataset('mydata')\ndef load(annotations, root):\n    return None\n",
                     "returned NoneType, not a vtrbench DatasetIndex"),
    "raises": ("@register_dataset('mydata')\ndef load(annotations, root):\n    return {}['videos']\n",
               "failed to load: KeyError"),
    "bad-fields": (
        "from vtrbench.api import DatasetIndex\n@register_dataset('mydata')\ndef load(annotations, root):\n"
        "    return DatasetIndex('mydata', None, [], {}, None, 'test')\n",
        "videos must be a list of VideoEntry",
    ),
    "bad-name": (
        "from vtrbench.api import DatasetIndex\n@register_dataset('mydata')\ndef load(annotations, root):\n"
        "    return DatasetIndex('../../up', [], [], {}, None, 'test')\n",
        "whose name '../../up'",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FAILING_DATASETS))
def test_dataset_plugin_failures_are_one_line(run_cli, tmp_path: Path, case: str) -> None:
    body, message = FAILING_DATASETS[case]
    plugin = _write(tmp_path / f"data_{case.replace('-', '_')}.py", DATASET_PRELUDE + body)
    r = run_cli("extract", "--plugin", plugin, "--dataset", "mydata", "--annotations", tmp_path,
                "--model", "vtrbench-tiny", "--pretrained", "none", "--device", "cpu", "--quiet",
                "--output", tmp_path / "c.h5")  # fmt: skip
    assert r.code == 2 and "Traceback" not in r.text, r.text
    (line,) = [ln for ln in r.err.splitlines() if ln.strip()]
    assert line.startswith("error:") and plugin.name in line and message in line, line
    assert not (tmp_path / "c.h5").exists()


def test_pairwise_plugin_wrong_block_shape_in_evaluation_is_one_line(synth_cache: Path) -> None:
    """Right on the dry batches and on training batches of 8, wrong on an evaluation block of 10+ captions."""
    from vtrbench import api
    from vtrbench.heads.xpool import XPoolHead

    class Late(XPoolHead):
        def score_states(self, text, video):
            out = super().score_states(text, video)
            return out[:, :-1] if out.shape[0] >= 10 else out

    api.register_head("latewrong")(Late)
    plugins._registries()["head"]._origins["latewrong"] = {"kind": "file", "source": "late.py"}
    with api.open_cache(synth_cache) as cache:
        test = api.load_split(cache, str(cache.attrs["default_test"]))
        head = api.create_head("latewrong", embed_dim=int(cache.attrs["embed_dim"]))
    assert test.n_texts >= 10
    with pytest.raises(api.VtrbenchError, match=r"plugin head 'latewrong' \(late.py\) returned logits of"):
        api.evaluate_head(head, test, postprocessing=("raw",))


TMASS_PLUGIN = '''
from vtrbench.api import register_head
from vtrbench.heads.tmass import LinearCosRadius, TMassHead


class HalfRadius(LinearCosRadius):
    """T-MASS's radius at half its log-scale: a plugin's own stochastic-text building block."""

    def forward(self, profile):
        return 0.5 * super().forward(profile)


@register_head("tmass_half")
class TMassHalf(TMassHead):
    head_name = "tmass_half"

    def __init__(self, embed_dim, **options):
        super().__init__(embed_dim, **options)
        self.radius = HalfRadius(self.radius.frames, embed_dim)
'''


def test_a_plugin_subclasses_tmass_and_its_radius(run_cli, synth_cache: Path, tmp_path: Path) -> None:
    """The stochastic-text blocks (TMassHead, LinearCosRadius) subclass through the plugin contract:
    the dry-batch checks pass, the head trains, its support-text loss and options come along."""
    plugin = _write(tmp_path / "tmass_half.py", TMASS_PLUGIN)
    results = tmp_path / "results"
    argv = ["train", "--plugin", plugin, "--cache", synth_cache, "--head", "tmass_half", "--loss", "infonce"]
    r = run_cli(*argv, "--head-option", "samples=2", "--results", results, *FAST)
    assert r.code == 0, r.text
    (res,) = _results(results)
    assert res["head_options"]["samples"] == 2 and res["head_options"]["aux_weight"] == 0.8
    assert res["protocol"]["head"]["samples"] == 2 and res["provenance"]["plugins"]["head"]["kind"] == "file"
