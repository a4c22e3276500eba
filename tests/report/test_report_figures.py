"""``report --plot`` with many systems (issue 30): the legend under the panels, never over them; one
colour and marker per system; footnote marks as superscripts, not a literal ``^a``.

The overlap checks use matplotlib's own bounding boxes after drawing (the legend's window extent
against each panel's tight box, which holds its title, tick labels and axis labels); the PDF is also
rendered to PNG with pdftoppm where it is installed, as a reader's viewer would.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.report_helpers import paper_result, paper_results

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

from vtrbench.report import figures  # noqa: E402


def _figure(results: list[dict], out: Path, monkeypatch: pytest.MonkeyPatch) -> Figure:
    """plot_report's figure, kept after it is written."""
    saved: list[Figure] = []
    real_save = figures._save

    def keep(fig: Figure, path: Path) -> Path:
        saved.append(fig)
        return real_save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    figures.plot_report(results, out)
    (fig,) = saved
    return fig


def _systems(n: int) -> list[dict]:
    rs = []
    for i in range(n):
        r = paper_result("meanp", "infonce", 0, 5.0 + 2 * i)
        r["label"], r["config_hash"] = f"meanp-v{i:02d}", f"hash-{i}"
        rs.append(r)
    return rs


def _data_lines(ax: object) -> list:
    """The data line of each errorbar (the caps and bars are lines too)."""
    return [c.lines[0] for c in ax.containers]  # type: ignore[attr-defined]


def _check_layout(fig: Figure) -> None:
    # At the figure's dpi and at the 200 dpi of the PNG it writes (text widths do not scale exactly).
    for dpi in (fig.dpi, 200):
        fig.set_dpi(dpi)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (legend,) = fig.legends
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            panel = ax.get_tightbbox(renderer)  # title, tick labels, axis labels included
            assert not box.overlaps(panel), (dpi, ax.get_title(), box, panel)
        whole = fig.bbox
        assert box.x0 >= whole.x0 - 1 and box.x1 <= whole.x1 + 1 and box.y0 >= whole.y0 - 1, (dpi, box, whole)


def test_eleven_systems_of_the_big_table(tmp_path, monkeypatch):
    fig = _figure(paper_results(), tmp_path / "fig.png", monkeypatch)
    _check_layout(fig)
    assert fig.get_figwidth() == pytest.approx(figures.COLUMN_WIDTH_IN)
    # The panels keep their height: the legend adds to the figure instead of taking from them.
    for ax in fig.axes:
        assert ax.get_window_extent().height / fig.dpi > 0.6 * figures.PANEL_HEIGHT_IN
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(texts) == 11
    assert not any("^" in t and "$" not in t for t in texts), texts  # no literal ^a
    marked = [t for t in texts if "$^{\\mathrm{" in t]
    assert len(marked) == 4 and all(t.count("$") == 2 for t in marked)
    t2v = fig.axes[0]
    colours = [line.get_color() for line in _data_lines(t2v)]
    assert len(colours) == 11 and len(set(colours)) == 11  # no two systems of the big table share a colour


def test_the_demos_seven_systems_share_lines_of_the_legend(tmp_path, monkeypatch):
    from vtrbench.report import load_results

    fixtures = Path(__file__).parents[1] / "fixtures" / "results" / "msrvtt"
    fig = _figure(load_results([fixtures]), tmp_path / "fig.png", monkeypatch)
    _check_layout(fig)
    renderer = fig.canvas.get_renderer()
    columns = {round(t.get_window_extent(renderer).x0) for t in fig.legends[0].get_texts()}
    assert len(columns) > 1  # short names: several per line, still inside the figure


def test_sixteen_systems_get_sixteen_colour_marker_pairs(tmp_path, monkeypatch):
    fig = _figure(_systems(16), tmp_path / "fig.pdf", monkeypatch)
    _check_layout(fig)
    lines = _data_lines(fig.axes[0])
    assert len(lines) == 16
    assert len({(line.get_color(), line.get_marker()) for line in lines}) == 16
    assert len({line.get_color() for line in lines}) == 16  # colour alone tells them apart
    # The style cycle: distinct pairs well past 16.
    assert len({figures.system_style(i) for i in range(128)}) == 128


def test_a_dollar_in_a_label_is_no_mathtext(tmp_path, monkeypatch):
    rs = _systems(2)
    rs[0]["label"] = "cost $5 head"
    fig = _figure(rs, tmp_path / "fig.png", monkeypatch)
    fig.canvas.draw()  # mathtext would fail to parse or swallow the text between two '$'
    assert any(t.get_text() == "cost \\$5 head + InfoNCE" for t in fig.legends[0].get_texts())


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) not installed")
def test_the_pdf_renders_with_the_legend_below(tmp_path):
    from PIL import Image

    out = figures.plot_report(paper_results(), tmp_path / "fig.pdf")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "100", str(out), str(tmp_path / "page")], check=True, timeout=60
    )
    (png,) = sorted(tmp_path.glob("page*.png"))
    image = Image.open(png).convert("L")
    width, height = image.size
    # One column wide (3.4 in at 100 dpi, give or take the tight bounding box), taller than wide: the
    # two panels and the legend under them.
    assert 300 <= width <= 360 and height > width
    # The bottom fifth holds the legend: ink there, and it is below the lowest panel's x label.
    bottom = image.crop((0, int(0.8 * height), width, height))
    assert bottom.getextrema()[0] < 128
