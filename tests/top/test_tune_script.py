"""benchmarks/tune.py's cells: ``HEAD+emcl`` split into a group of its own whose --space file fixes the
head option (read back by vtrbench's own space loader), and the labels its tables give those cells."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def tune() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        import tune as module
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_variants_form_their_own_group_after_the_plain_heads(tune: ModuleType) -> None:
    groups = tune.head_groups(["meanp+emcl", "ucofia", "seqtransf+emcl", "camoe"])
    assert groups == [
        ("", ["ucofia", "camoe"], {}),
        ("emcl", ["meanp", "seqtransf"], {"emcl": True}),
    ]


def test_an_unknown_variant_is_one_line(tune: ModuleType) -> None:
    with pytest.raises(SystemExit) as err:
        tune.head_groups(["meanp+emcI"])
    assert "meanp+emcI" in str(err.value) and "emcl" in str(err.value) and "\n" not in str(err.value)


def test_the_space_file_fixes_the_option_for_every_head_of_the_group(
    tune: ModuleType, tmp_path: Path
) -> None:
    from vtrbench.runs.tune.space import cell_space, load_space_file

    flags = tune._space_flags(tmp_path, "emcl", ["meanp", "seqtransf"], {"emcl": True})
    assert flags[0] == "--space"
    override = load_space_file(flags[1])
    for head in ("meanp", "seqtransf"):
        space = cell_space(head, "infonce", max_epochs=20, embed_dim=64, override=override)
        assert space["head.emcl"].kind == "choice" and space["head.emcl"].choices == (True,)
    assert tune._space_flags(tmp_path, "", ["meanp"], {}) == []
    assert tune._option_flags({"emcl": True}) == ["--head-option", "emcl=true"]


def test_variant_cells_are_labelled_as_the_report_labels_the_head(tune: ModuleType) -> None:
    assert tune.variant_cell("meanp+dsl", "emcl") == "meanp[emcl]+dsl"
    assert tune.variant_cell("meanp+dsl", "") == "meanp+dsl"
    assert tune._study_tag("tune-median-s1-emcl.db") == "emcl"
    assert tune._study_tag("tune-median-s1.db") == ""
