"""Deprecated: moved to vtrbench.eval.postprocess (with the table of post-processings that was in
vtrbench/evaluate.py); ``POST_DEFAULTS`` is ``vtrbench.defaults.POST_DEFAULTS`` (read-only: copy it
with ``dict()`` to change it).

Every public name this module had is re-exported until its callers import the new paths.
"""

from vtrbench.defaults import POST_DEFAULTS
from vtrbench.eval.postprocess import (
    BANK_POSTS,
    Scored,
    apply_csls,
    apply_is,
    apply_sinkhorn,
    bank_statistics,
    prepare_bank,
    prepare_csls_test,
    prepare_is_test,
    prepare_sinkhorn,
)

__all__ = [
    "BANK_POSTS",
    "POST_DEFAULTS",
    "Scored",
    "apply_csls",
    "apply_is",
    "apply_sinkhorn",
    "bank_statistics",
    "prepare_bank",
    "prepare_csls_test",
    "prepare_is_test",
    "prepare_sinkhorn",
]
