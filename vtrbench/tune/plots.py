"""Deprecated: moved to :mod:`vtrbench.runs.tune.plots`."""

from vtrbench.runs.tune.plots import plot_studies

__all__ = ["plot_studies"]
