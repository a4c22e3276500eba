"""Result JSONs → one pandas table → Markdown and LaTeX (and optional PNG/PDF/SVG figures).

``report`` reads nothing but result files (results/README.md, schema 1); it never imports torch,
extraction or the cache. Modules, in the order data flows through them: ``perquery`` (per-query
tie counts), ``validate`` (ranges and consistency of one result), ``loading`` (read, validate,
deduplicate, one flat frame, comparability), ``stats`` (bootstraps), ``decomposition`` (the loss x
inference section), ``labels`` (short row names, renames), ``text`` (LaTeX and Markdown escaping),
``model`` (the data model: Block, Report, and the cell text every writer shares), ``options``
(ReportOptions), ``blocks`` (aggregation into blocks, baseline differences, significance), ``notes``,
``tables`` (the builder), ``pagefit`` (will a LaTeX float fit a page), then the views: ``markdown``,
``latex``, ``terminal`` (rich tables that fit the window), ``data``, ``figures``. A module imports
only modules before it in this list. The public API, re-exported here:

- :func:`load_results` ``(paths) -> list[dict]``: every result JSON under files/folders.
- :func:`results_frame` ``(results) -> DataFrame``: one row per (result file, post-processing), flat
  columns ``label``, ``head``, ``loss``, ``seed``, ``post``, ``t2v/R@1`` … ``v2t/MnR``, ``RSum`` and the
  head/loss options as ``head_options.<key>``.
- :func:`check_comparable` ``(results, allow_mixed=False) -> list[str]``: refuses results from
  different caches, test splits or protocols.
- :func:`build_report` ``(results, *, layout, metric, rows, cols, posts, baseline, columns, bootstrap,
  labels, rename, caption, tex_label, allow_mixed, …) ->
  Report``: the numbers of every table block as DataFrames (means, stds, seed counts, best flags,
  baseline differences), plus provenance and notes; :func:`build_report_from` ``(results, options)``:
  the same with the parameters in one :class:`ReportOptions`.
- :func:`render_markdown` ``(report, notes="full") -> str`` and :func:`render_latex` ``(report,
  standalone=False, wide=False, notes="full", split="auto") -> str``: the same Report written twice
  (``notes``: full, short or none beside the table; ``split``: a LaTeX table taller than a page as
  several floats); :func:`render_json` / :func:`render_csv` (and
  :func:`report_data` / :func:`report_records`): its numbers at full precision for scripts (module
  ``data``).
- :func:`paired_bootstrap` / :func:`hierarchical_bootstrap`: the intervals behind Δ and † (stats).
- :func:`plot_report` ``(results, out)``: recall@K curves and CAMoE gate weights; :func:`plot_sweeps`:
  a metric against a swept option; :func:`plot_all`: both (matplotlib).

Layouts. ``paper``: one row per configuration, named by its ``label`` and ``loss`` (shown by their
short names, see ``labels``); columns ``DEFAULT_COLUMNS`` (t2v and v2t R@1/R@5/R@10/MdR and RSum)
unless ``columns`` says otherwise. ``pivot``: rows = values of one field (``rows``), columns = values of
another (``cols``), cells = one ``metric``. Each inference post-processing (``raw``, ``dsl`` which is
transductive, ``qbnorm``) is its own labelled block; numbers of two post-processings never share a column.

Cells are the mean ± sample standard deviation (ddof=1) over the seeds of one configuration, one
decimal; one seed shows the mean alone. The ``n`` column gives the number of seeds; in a row whose
cells average different numbers of seeds it lists them per column (``2/1/–``). A cell must hold one
configuration: two files with the same row/column but different ``config_hash`` (or cache) are an
error; two files of one run (same ``config_hash``, seed and cache) count once, so seeds are never
confused with configurations or copies.

Bold marks the best value of each column within a block, compared at the printed precision (so that
two cells that read the same are both bold): highest for R@K and RSum, lowest for MdR and MnR
(``results.HIGHER_IS_BETTER``). A column with a single value has no bold.

Baseline differences (Δ) use the per-query tie counts of schema-2 result files (``per_query``): per
query, R@K is the expected recall@K under random tie-breaking and MnR the expected rank, the same
quantity the columns average, so Δ's point estimate is exactly the difference of the two cells, for
every K and both directions (:mod:`vtrbench.report.perquery`). Schema-1 files (no counts) still make
tables, but their Δ and † are "n/a" with a warning to re-run the evaluation. The interval is a
hierarchical paired bootstrap over seeds and queries (``bootstrap="queries"``: over queries of the
seed-averaged values), see :mod:`vtrbench.report.stats`; a † marks each per-query cell whose
bootstrap p-value (from the same replicates), after the table's multiple-comparison correction
(``correction``: Holm by default when more than 3 cells are tested), is below 5 %.

Every result is checked first by :func:`vtrbench.report.validate.validate_result`: ranges (recall in
[0, 100], ranks within the gallery, counts >= 1, seeds >= 0, transductivity) and the stored metrics
against the stored per-query data.
"""

from vtrbench.report.data import render_csv, render_json, report_data, report_records
from vtrbench.report.figures import plot_all, plot_report, plot_sweeps, require_matplotlib
from vtrbench.report.latex import render_latex
from vtrbench.report.loading import (
    COMPARABILITY_FIELDS,
    METRIC_COLUMNS,
    check_comparable,
    load_results,
    results_frame,
)
from vtrbench.report.markdown import render_markdown
from vtrbench.report.model import DECIMALS, Block, Report
from vtrbench.report.options import DEFAULT_COLUMNS, LAYOUTS, PAPER_COLUMNS, ReportOptions
from vtrbench.report.stats import (
    adjust_p,
    bootstrap_p,
    hierarchical_bootstrap,
    paired_bootstrap,
    per_query_values,
)
from vtrbench.report.tables import RANDOM_WEIGHTS_NOTE, build_report, build_report_from
from vtrbench.report.text import latex_escape, latex_prose, markdown_escape
from vtrbench.report.validate import validate_result

__all__ = [
    "COMPARABILITY_FIELDS",
    "DECIMALS",
    "DEFAULT_COLUMNS",
    "LAYOUTS",
    "METRIC_COLUMNS",
    "PAPER_COLUMNS",
    "RANDOM_WEIGHTS_NOTE",
    "Block",
    "Report",
    "ReportOptions",
    "build_report",
    "build_report_from",
    "check_comparable",
    "adjust_p",
    "bootstrap_p",
    "latex_escape",
    "latex_prose",
    "load_results",
    "markdown_escape",
    "hierarchical_bootstrap",
    "paired_bootstrap",
    "per_query_values",
    "plot_all",
    "plot_report",
    "plot_sweeps",
    "require_matplotlib",
    "render_csv",
    "render_json",
    "render_latex",
    "render_markdown",
    "report_data",
    "report_records",
    "results_frame",
    "validate_result",
]
