"""Deprecated: moved to :mod:`vtrbench.runs.tune.notes`."""

from vtrbench.runs.tune.notes import TUNED_LABEL, tuned_notes

__all__ = ["TUNED_LABEL", "tuned_notes"]
