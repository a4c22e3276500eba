"""The refusals that evaluation shares with the checks before a run (``runs/``): one wording each."""

from __future__ import annotations


def qb_k_message(k: int, n_videos: int, split: str | None = None) -> str:
    """The one refusal of a QB-Norm ``k`` larger than the test gallery (it would be clamped silently)."""
    where = f"test split {split!r}" if split else "the test gallery"
    return (
        f"qb_k {k} is larger than {where} ({n_videos} usable videos): QB-Norm's hubs are each bank "
        f"query's top-k test videos, so k must be <= {n_videos}"
    )


def csls_k_message(k: int, post: str, limit: int) -> str:
    """The one refusal of a CSLS ``k`` beyond the neighbours it averages (the gallery or the bank)."""
    what = "the banks of training queries" if post == "csls-bank" else "the test gallery"
    return (
        f"csls_k {k} is larger than {what} ({limit}): {post} averages each item's k nearest "
        f"neighbours, so k must be <= {limit} (--post-option csls_k=K)"
    )


def bank_message(post: str) -> str:
    """The one refusal of a bank-based post-processing without a bank of training queries."""
    return (
        f"{post} needs a bank of training queries and none was given: pass bank_text and bank_video "
        "(Python API) or a train split (--train-split, or a cache with a standard train split), "
        f"or leave {post} out"
    )
