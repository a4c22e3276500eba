"""What a report shows: :class:`ReportOptions` (the parameters of ``build_report``) and their checks.

Layer: above the data model (``model``), below the block builder (``blocks``) and ``tables``. One
options object travels down through the builder instead of eighteen parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from vtrbench.errors import VtrbenchError
from vtrbench.report.decomposition import parse_target
from vtrbench.report.loading import METRIC_COLUMNS
from vtrbench.report.model import metric_name
from vtrbench.report.stats import BOOTSTRAPS, CORRECTIONS
from vtrbench.results import DIRECTIONS, POSTPROCESSING, REPORT_POSTS

LAYOUTS = ("paper", "pivot")
PAPER_METRICS = ("R@1", "R@5", "R@10", "MdR", "MnR")
PAPER_COLUMNS = tuple(f"{d}/{m}" for d in DIRECTIONS for m in PAPER_METRICS) + ("RSum",)
# What a paper prints (CLIP4Clip, CAMoE): R@1/5/10 and MdR per direction, and their sum.
DEFAULT_COLUMNS = tuple(f"{d}/{m}" for d in DIRECTIONS for m in ("R@1", "R@5", "R@10", "MdR")) + ("RSum",)
PAPER_ROW_FIELDS = ("label", "loss")


def check_metric(metric: str) -> None:
    """Refuse a metric that is no column of :func:`~vtrbench.report.loading.results_frame`."""
    if metric not in METRIC_COLUMNS:
        raise VtrbenchError(f"unknown metric {metric!r}; use one of {', '.join(METRIC_COLUMNS)}")


def is_per_query(metric: str) -> bool:
    """A mean over one set of queries (R@K, MnR): the metrics that baseline differences can test."""
    name = metric_name(metric)
    return metric != "RSum" and (name.startswith("R@") or name == "MnR")


def check_diff_metric(metric: str) -> None:
    """Refuse a baseline difference of a metric that is not a per-query mean."""
    if not is_per_query(metric):
        raise VtrbenchError(
            f"baseline differences need a per-query metric (t2v/ or v2t/ R@K or MnR), not {metric!r}: "
            "MdR and RSum are not means over one set of queries"
        )


@dataclass(frozen=True)
class ReportOptions:
    """The parameters of :func:`~vtrbench.report.tables.build_report`, with the same names and defaults.

    ``layout``: ``paper`` or ``pivot``. ``metric``: the pivot cells' metric and the metric of the
    baseline differences. ``rows``/``cols``: pivot fields. ``posts``: which post-processing blocks,
    in order. ``baseline``: a row to difference every other row against. ``columns``: the paper
    layout's metric columns (None: ``DEFAULT_COLUMNS``). ``correction``: how the † marks account for
    testing many cells. ``decomposition``: add the loss x inference section; ``decomposition_target``:
    its target cell (``"LOSS:POST"`` or a (loss, post) pair; None: ``defaults.DECOMPOSITION_TARGET``).
    See ``build_report``.
    """

    layout: str = "paper"
    metric: str = "t2v/R@1"
    rows: str = "label"
    cols: str = "loss"
    posts: Sequence[str] = REPORT_POSTS
    baseline: str | Sequence[str] | None = None
    allow_mixed: bool = False
    n_boot: int = 1000
    boot_seed: int = 0
    columns: Sequence[str] | None = None
    bootstrap: str = "seeds+queries"
    labels: str = "short"
    rename: dict[str, str] | None = None
    caption: str | None = None
    tex_label: str | None = None
    correction: str = "auto"
    decomposition: bool = True
    decomposition_target: str | Sequence[str] | None = None

    @property
    def row_fields(self) -> tuple[str, ...]:
        """The fields that name a row: label and loss (paper), or the pivot's ``rows``."""
        return PAPER_ROW_FIELDS if self.layout == "paper" else (self.rows,)

    def checked(self) -> ReportOptions:
        """These options with ``posts`` and ``columns`` as tuples (``columns`` filled in); raises one
        VtrbenchError for the first option that cannot make a report (checked in a fixed order)."""
        if self.layout not in LAYOUTS:
            raise VtrbenchError(f"unknown layout {self.layout!r}; use one of {', '.join(LAYOUTS)}")
        check_metric(self.metric)
        if self.baseline is not None:
            check_diff_metric(self.metric)
        posts = tuple(self.posts)
        if not posts:
            raise VtrbenchError("no post-processing selected; use some of " + ", ".join(POSTPROCESSING))
        for p in posts:
            if p not in POSTPROCESSING:
                raise VtrbenchError(f"unknown post-processing {p!r}; use some of {', '.join(POSTPROCESSING)}")
        if self.n_boot < 1:
            raise VtrbenchError(f"n_boot must be at least 1, got {self.n_boot}")
        if self.tex_label is not None and not re.fullmatch(r"[A-Za-z0-9:._/+-]+", self.tex_label):
            raise VtrbenchError(
                f"--label {self.tex_label!r}: a LaTeX label uses letters, digits and : . _ / + - only "
                "(e.g. tab:results)"
            )
        if self.bootstrap not in BOOTSTRAPS:
            raise VtrbenchError(f"unknown bootstrap {self.bootstrap!r}; use one of {', '.join(BOOTSTRAPS)}")
        if self.correction not in CORRECTIONS:
            raise VtrbenchError(
                f"unknown correction {self.correction!r}; use one of {', '.join(CORRECTIONS)}"
            )
        parse_target(self.decomposition_target)
        return replace(self, posts=posts, columns=_checked_columns(self.columns))


def _checked_columns(columns: Sequence[str] | None) -> tuple[str, ...]:
    columns = tuple(DEFAULT_COLUMNS if columns is None else columns)
    if not columns:
        raise VtrbenchError("no columns selected; use some of " + ", ".join(METRIC_COLUMNS))
    for c in columns:
        if c not in METRIC_COLUMNS:
            raise VtrbenchError(f"unknown column {c!r}; use some of {', '.join(METRIC_COLUMNS)}")
    if len(set(columns)) != len(columns):
        raise VtrbenchError(f"a column is named twice in {', '.join(columns)}")
    return columns
