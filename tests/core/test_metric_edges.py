"""Edge cases of the metrics and losses that mutation testing showed no test pinned.

Each test names the change it guards against (tests/README.md lists the mutation runs). The
expected values are worked out by hand from the definitions in METHODS.md sections 7-8.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_loss
from vtrbench.metrics import best_correct_counts, group_max, t2v_metrics, v2t_counts, v2t_metrics


def test_a_single_query_is_enough() -> None:
    # one caption, three videos, its video second best: rank 2 (guards `n == 0` -> `n == 1`)
    metrics, ranks = t2v_metrics(np.array([[0.9, 0.5, 0.1]]), np.array([1]))
    assert ranks.tolist() == [2.0]
    assert metrics == {"R@1": 0.0, "R@5": 100.0, "R@10": 100.0, "R@50": 100.0, "MdR": 2.0, "MnR": 2.0}


def test_no_query_is_refused() -> None:
    with pytest.raises(VtrbenchError, match="no queries"):
        t2v_metrics(np.zeros((0, 3)), np.zeros(0, dtype=int))


@pytest.mark.parametrize(
    "bad",
    [np.array([True, False]), np.array([0.0, 1.0]), np.array([[0], [1]]), np.array([0, 1, 1])],
    ids=["bool", "float", "2-D", "too long"],
)
def test_query_video_must_be_integer_indices(bad: np.ndarray) -> None:
    # a bool mask of the right length is not a list of indices (guards `or` -> `and` in the dtype check)
    with pytest.raises(VtrbenchError, match="query_video must be a 1-D integer array of length 2"):
        t2v_metrics(np.eye(2), bad)


@pytest.mark.parametrize("bad", [[0, 2], [-1, 0]])
def test_query_video_must_index_the_gallery(bad: list[int]) -> None:
    with pytest.raises(VtrbenchError, match=r"outside \[0, 2\)"):
        t2v_metrics(np.eye(2), np.array(bad))


def test_infinite_scores_without_nan_are_ranked() -> None:
    # +inf and -inf sum to NaN, but the matrix holds no NaN: it must be ranked, not refused
    sim = np.array([[np.inf, 0.0, -np.inf], [-np.inf, 1.0, 0.5], [0.0, -np.inf, 2.0]])
    metrics, ranks = t2v_metrics(sim, np.array([0, 1, 2]))
    assert ranks.tolist() == [1.0, 1.0, 1.0] and metrics["R@1"] == 100.0


def test_nan_is_refused() -> None:
    with pytest.raises(VtrbenchError, match="NaN"):
        t2v_metrics(np.array([[0.1, np.nan], [0.2, 0.3]]), np.array([0, 1]))


def test_v2t_any_caption_with_two_tied_correct_captions() -> None:
    # video 0 has captions 0 and 1, both tied with one wrong caption (2) at the top score:
    # 3 tied items, 2 correct -> expected rank 1 + 1/3, P(rank 1) = 2/3 (METHODS section 8 tie policy)
    sim = np.array([[0.5, 0.0], [0.5, 0.1], [0.5, 0.9]])  # captions x videos
    metrics, ranks = v2t_metrics(sim, np.array([0, 0, 1]), protocol="any-caption")
    assert ranks[0] == pytest.approx(1 + 1 / 3)
    assert ranks[1] == 1.0  # video 1: caption 2 scores 0.9, above every other caption
    assert metrics["R@1"] == pytest.approx(100 * (2 / 3 + 1) / 2)


@pytest.mark.parametrize("temperature", [True, False, 0, -1.0, "1000"])
def test_dsl_temperature_must_be_a_positive_number(temperature: object) -> None:
    # a bool is an int to Python; True would silently mean temperature 1
    with pytest.raises(VtrbenchError, match="temperature"):
        create_loss("dsl", temperature=temperature)


def test_queries_over_an_empty_gallery_have_no_correct_item() -> None:
    # two queries, no gallery item: refused by name, not a torch error on an empty max
    with pytest.raises(VtrbenchError, match="at least one correct item"):
        best_correct_counts(np.zeros((2, 0)), np.zeros((2, 0), dtype=bool))


def test_group_max_when_columns_and_groups_are_as_many_but_not_one_to_one() -> None:
    # 3 columns, 3 groups, but group 0 owns columns 0 and 1 and group 1 owns none: not a permutation
    scores = torch.tensor([[0.2, 0.7, 0.1], [0.9, 0.3, 0.4]], dtype=torch.float64)
    got = group_max(scores, torch.tensor([0, 0, 2]), 3)
    inf = float("inf")
    assert got.tolist() == [[0.7, -inf, 0.1], [0.9, -inf, 0.4]]
    # a true permutation is a column reordering
    assert group_max(scores, torch.tensor([2, 0, 1]), 3).tolist() == [[0.7, 0.1, 0.2], [0.3, 0.4, 0.9]]


def test_v2t_counts_refuses_a_video_without_captions_past_the_last() -> None:
    # captions belong to videos 0 and 1; query video 2 is not in the gallery of caption groups
    with pytest.raises(VtrbenchError, match=r"videos holds indices outside \[0, 2\)"):
        v2t_counts(np.array([[0.1, 0.2]]), np.array([2]), np.array([0, 1]))
