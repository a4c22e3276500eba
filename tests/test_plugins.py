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

REPO = Path(__file__).resolve().parents[1]
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
    assert "\nmeanp\n" in listed  # built-ins are listed bare


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
