"""The README's pictures of the largest table it shows (issue 30), made the way an author makes them:

    python tools/paper_table.py --out docs

Writes the 21 result files of ``tests.report_helpers.paper_results`` (default-recipe and tuned rows
of meanP/seqTransf/CAMoE x InfoNCE/DSL, zero-shot; raw, dsl, qbnorm blocks; synthetic numbers) to a
temporary folder, then runs

    vtrbench report RESULTS --format latex --standalone --baseline "meanp + infonce" --notes short \\
        --notes-file notes.tex --caption ... --label tab:big --output table.tex --plot fig.pdf

and pdflatex on ``table.tex`` (stopping when its log has an overfull box, a float too large for the
page, or an error), then pdftoppm on both PDFs: ``docs/report_big_table.png`` (every page, each
cropped to its ink, one under the other: the table is set as a float and its continuation) and
``docs/report_big_figure.png``. Needs pdflatex, pdftoppm, matplotlib and Pillow; run it from the
repository root.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CAPTION = "Text-video retrieval on MSR-VTT 1k-A (synthetic numbers): default recipe and tuned heads"


def _run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:3])} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def _crop(page: Any) -> Any:
    """A page without its white margins (8 px kept)."""
    from PIL import ImageOps

    box = ImageOps.invert(page.convert("L")).getbbox()
    if box is None:
        return page
    x0, y0, x1, y1 = box
    return page.crop((max(0, x0 - 8), max(0, y0 - 8), min(page.width, x1 + 8), min(page.height, y1 + 8)))


def _stack(pages: list[Path], out: Path, colors: int = 128) -> None:
    """The pages' ink one under the other, a grey line between pages, as a small palette PNG."""
    from PIL import Image

    crops = [_crop(Image.open(p).convert("RGB")) for p in pages]
    gap = 24
    width = max(c.width for c in crops)
    image = Image.new("RGB", (width, sum(c.height for c in crops) + gap * (len(crops) - 1)), "white")
    y = 0
    for i, c in enumerate(crops):
        if i:
            image.paste((200, 200, 200), (0, y - gap // 2, width, y - gap // 2 + 1))
        image.paste(c, (0, y))
        y += c.height + gap
    image.convert("P", palette=Image.Palette.ADAPTIVE, colors=colors).save(out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--dpi", type=int, default=130)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.report_helpers import paper_results

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vtrbench-paper-") as tmp:
        work = Path(tmp)
        results = work / "results"
        results.mkdir()
        for r in paper_results():
            (results / f"{r['run_id']}.json").write_text(json.dumps(r))
        report = [sys.executable, "-m", "vtrbench", "report", str(results), "--format", "latex"]
        report += ["--standalone", "--baseline", "meanp + infonce", "--notes", "short"]
        report += ["--notes-file", "notes.tex", "--caption", CAPTION, "--label", "tab:big"]
        report += ["--output", "table.tex", "--plot", "fig.pdf"]
        _run(report, work)
        tex = (
            (work / "table.tex")
            .read_text()
            .replace("\\begin{document}", "\\pagestyle{empty}\n\\begin{document}")
        )
        (work / "table.tex").write_text(tex)
        _run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "table.tex"], work)
        log = (work / "table.log").read_text(errors="replace")
        bad = re.findall(r"(Overfull \\[hv]box.*|Float too large.*|^! .*)", log, re.M)
        if bad:
            sys.exit(f"table.tex does not fit its page: {bad[:3]}")
        for pdf, name in (("table.pdf", "report_big_table"), ("fig.pdf", "report_big_figure")):
            _run(["pdftoppm", "-png", "-r", str(args.dpi), pdf, name], work)
            png = out / f"{name}.png"
            _stack(sorted(work.glob(f"{name}*.png")), png)
            print(png)


if __name__ == "__main__":
    main()
