"""Code written against the last release keeps working: every public name its modules had is still
importable from the same path (the moved ones through deprecated re-exports, CHANGELOG lists them).

The list was read with ``ast`` from commit fdadac3, the tree before the one-way layers
(tests/fixtures/public_names_fdadac3.json; for ``vtrbench.api``, its ``__all__``). Two constants
of ``vtrbench.report.text`` (``FIELD_HEADERS``, ``NOT_AVAILABLE``) moved to ``vtrbench.report.model``
without a re-export: the escaping module sits below the data model now and cannot import it back.
"""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path

import pytest

NAMES = json.loads((Path(__file__).parents[1] / "fixtures" / "public_names_fdadac3.json").read_text())[
    "modules"
]


@pytest.mark.parametrize("module", sorted(NAMES))
def test_every_public_name_of_the_last_release_still_imports(module: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        mod = importlib.import_module(module)
        missing = [name for name in NAMES[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lost {missing}"


def test_moved_factories_warn_and_are_the_same_objects() -> None:
    from vtrbench import factory
    from vtrbench.heads import base as heads_base
    from vtrbench.losses import base as losses_base

    with pytest.warns(DeprecationWarning, match="vtrbench.factory.create_head"):
        assert heads_base.create_head is factory.create_head
    with pytest.warns(DeprecationWarning, match="vtrbench.factory.create_loss"):
        assert losses_base.create_loss is factory.create_loss


def test_the_old_runner_and_train_paths_are_the_new_functions() -> None:
    import vtrbench.runner
    import vtrbench.train
    from vtrbench.runs import data, runner, scoring, train

    assert vtrbench.runner.run_training is runner.run_training
    assert vtrbench.train.fit is train.fit
    assert vtrbench.train.evaluate_head is scoring.evaluate_head
    assert vtrbench.train.load_split is data.load_split
