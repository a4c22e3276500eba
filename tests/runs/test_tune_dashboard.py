"""A ``vtrbench tune`` study opens in optuna-dashboard (README: ``optuna-dashboard sqlite:///STUDY.db``).

The dashboard's own WSGI application (``optuna_dashboard.wsgi``) is called in-process with a plain WSGI
environ, no server and no socket: its JSON API must list the vtrbench studies by name and read back
each trial's state, objective value, sampled parameters and vtrbench's per-trial attributes, and the
per-epoch objective reported for pruning (the intermediate values). Skipped without optuna-dashboard
(``pip install 'vtrbench[tune]'`` installs it).
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

SPACE = """
[train]
epochs = {low = 1, high = 2}
batch_size = {choices = [4, 8]}
lr = {low = 1e-4, high = 1e-2, log = true}
"""


def _get(app: Any, path: str) -> Any:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc=None: status.append(s)))
    assert status[0].startswith("200"), (path, status, body[:300])
    return json.loads(body)


def test_a_vtrbench_study_loads_in_optuna_dashboard(synth_cache: Path, run_cli: Any, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    dashboard = pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed")
    study = tmp_path / "tune.db"
    (tmp_path / "space.toml").write_text(SPACE)
    res = run_cli(
        "tune", "--cache", synth_cache, "--heads", "meanp", "--losses", "infonce,dsl", "--trials", 2,
        "--max-epochs", 2, "--val-fraction", 0.25, "--study", study, "--space", tmp_path / "space.toml",
        "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert res.code == 0, res.text

    app = dashboard.wsgi(f"sqlite:///{study}")
    studies = {s["study_name"]: s for s in _get(app, "/api/studies")["study_summaries"]}
    assert sorted(studies) == ["vtrbench:meanp+dsl", "vtrbench:meanp+infonce"]
    with sqlite3.connect(study) as db:  # what the study file holds, read without optuna
        stored = {
            name: sorted(
                (number, state, value)
                for number, state, value in db.execute(
                    "SELECT t.number, t.state, v.value FROM trials t JOIN studies s USING (study_id) "
                    "LEFT JOIN trial_values v USING (trial_id) WHERE s.study_name = ?",
                    (name,),
                )
            )
            for name in studies
        }
    for name, summary in studies.items():
        detail = _get(app, f"/api/studies/{summary['study_id']}")
        trials = detail["trials"]
        shown = sorted((t["number"], t["state"].upper(), (t.get("values") or [None])[0]) for t in trials)
        assert detail["name"] == name
        assert shown == stored[name] and len(trials) >= 2
        assert summary["directions"] == ["maximize"]
        done = [t for t in trials if t["state"].lower() in ("complete", "pruned")]
        assert len(done) == 2
        for t in done:
            params = {p["name"] for p in t["params"]}
            assert {"epochs", "batch_size", "lr"} <= params
            assert "epochs_run" in {a["key"] for a in t["user_attrs"]}
            # the per-epoch validation objective reported for pruning: one value per epoch trained
            epochs_run = next(a["value"] for a in t["user_attrs"] if a["key"] == "epochs_run")
            assert [v["step"] for v in t["intermediate_values"]] == list(range(1, int(epochs_run) + 1))
