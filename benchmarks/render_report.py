"""Render the demo's report as the README shows it: a PNG of the table and the figure, plus the
LaTeX and Markdown they come from.

    python benchmarks/render_report.py --demo demo --out docs
    # runs `vtrbench demo --output demo --quiet` first when demo/results holds no results

Writes ``docs/report_table.png`` (the paper layout as the LaTeX table shows it: short labels, the
default nine columns, † marks), ``docs/report_figure.png`` (``vtrbench report --plot``),
``docs/report_table.tex`` and ``docs/report.md``. The table PNG is drawn with matplotlib from the
same cells as the LaTeX (no TeX needed), so that the README stays reproducible on any machine.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BASELINE = "meanp + infonce"


def _plain_tex(cell: str) -> str:
    """A LaTeX cell as text: \\textbf{62.5}$^{\\dagger}_{3.5}$ -> ('62.5† ±3.5', bold)."""
    text = re.sub(r"\\textbf\{([^}]*)\}", r"\1", cell)
    text = text.replace(r"$^{\dagger}", "†$").replace("$_{", " ±").replace("}$", "").replace("$", "")
    text = text.replace(r"\textsuperscript{", "^").replace("---", "—").replace("}", "")
    return text.strip()


def render_table_png(report: object, out: Path) -> Path:
    from matplotlib.figure import Figure

    from vtrbench.report.latex import seed_counts
    from vtrbench.report.model import text_rows

    header = ["Method", "Loss", "t2v R@1", "R@5", "R@10", "MdR", "v2t R@1", "R@5", "R@10", "MdR", "RSum"]
    rows: list[list[str]] = []
    bold: list[list[bool]] = []
    sections: list[int] = []
    for block in report.blocks:  # type: ignore[attr-defined]
        sections.append(len(rows))
        rows.append([block.title] + [""] * (len(header) - 1))
        bold.append([False] * len(header))
        for r in text_rows(block, "tex"):
            r = r[:2] + r[3:]  # no n column (seed counts go below the table)
            rows.append([_plain_tex(c) for c in r])
            bold.append([c.startswith(r"\textbf") for c in r])
    fig = Figure(figsize=(7.0, 0.22 * (len(rows) + 3)))
    ax = fig.subplots()
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="right", colLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    for (i, j), cell in table.get_celld().items():
        cell.set_edgecolor("white")
        if j < 2:
            cell.set_text_props(ha="left")
            cell._loc = "left"
        if i == 0:
            cell.set_text_props(weight="bold")
            cell.visible_edges = "B"
            cell.set_edgecolor("black")
        elif i - 1 in sections:
            cell.set_text_props(style="italic")
        elif bold[i - 1][j]:
            cell.set_text_props(weight="bold")
    table.auto_set_column_width(list(range(len(header))))
    note = (
        f"seeds per row: {seed_counts(report)}; subscript ±: sample std over seeds; bold: best per column; "
    )
    rule = {"holm": "Holm-corrected ", "bonferroni": "Bonferroni-corrected "}.get(report.correction, "")  # type: ignore[attr-defined]
    note += f"†: {rule}bootstrap p < 0.05 for the difference to {report.baseline_shown}"  # type: ignore[attr-defined]
    fig.text(0.01, 0.01, note, fontsize=6)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    return out


def _shrink(png: Path) -> None:
    """Fewer colours, same pixels: keeps the committed PNGs small (tens of kB)."""
    from PIL import Image

    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=64)
    small.save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", type=Path, default=Path("demo"), help="the demo's output folder")
    ap.add_argument("--out", type=Path, default=Path("docs"))
    args = ap.parse_args(argv)
    results = args.demo / "results"
    if not list(results.rglob("*.json")):
        from vtrbench.cli import main as cli

        code = cli(["demo", "--output", str(args.demo), "--quiet"])
        if code:
            return code
    from vtrbench import report as rep

    loaded = rep.load_results([results])
    built = rep.build_report(
        loaded, baseline=BASELINE, caption="vtrbench demo (synthetic videos, random weights)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(rep.render_markdown(built))
    (args.out / "report_table.tex").write_text(rep.render_latex(built))
    for path in (
        render_table_png(built, args.out / "report_table.png"),
        rep.plot_report(loaded, args.out / "report_figure.png"),
    ):
        _shrink(path)
    print(
        f"wrote {args.out}/report_table.png, report_figure.png, report_table.tex, report.md", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
