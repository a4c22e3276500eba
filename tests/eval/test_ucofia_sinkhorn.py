"""ucofia ``sinkhorn=bank`` through evaluation: the per-video bias is computed once from the bank and
the whole gallery, so the ranks do not depend on the block shape; without a bank it is one line."""

from __future__ import annotations

import pytest
from test_pairwise import build, split

from vtrbench.errors import VtrbenchError
from vtrbench.runs.scoring import evaluate_head


def test_bank_bias_ranks_are_the_same_for_every_block_and_change_the_plain_ranks() -> None:
    head = build("ucofia", seed=2, sinkhorn="bank")
    test, bank = split(9, seed=5), split(6, seed=6)
    runs = [
        evaluate_head(head, test, bank=bank, postprocessing=("raw",), block=block)["per_query_ranks"]["raw"]
        for block in [(1, 1), (2, 3), (64, 64)]
    ]
    assert all(r == runs[0] for r in runs[1:])
    plain = build("ucofia", seed=2)
    ranks = evaluate_head(plain, test, bank=bank, postprocessing=("raw",))["per_query_ranks"]["raw"]
    assert ranks != runs[0]  # the bias moves some ranks on these inputs


def test_bank_bias_without_a_bank_is_one_line() -> None:
    head = build("ucofia", sinkhorn="bank")
    with pytest.raises(VtrbenchError) as err:
        evaluate_head(head, split(5, seed=1), postprocessing=("raw",))
    assert "\n" not in str(err.value) and "sinkhorn=bank" in str(err.value) and "bank" in str(err.value)
