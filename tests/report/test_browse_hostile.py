"""Captions and labels that try to change how the browse page parses (issue 28): the page's embedded
JSON escapes every character that could open a comment, a script or a CDATA section, so the table and
the drill-down still render in headless Chromium and each caption shows as its literal text.

The oracle is the browser's own DOM (``chromium --headless --dump-dom``), not vtrbench's encoder:
before the fix a caption holding ``<!--`` with a later ``<script`` put the parser in the script-data
double-escaped state, the data block swallowed the page's script, and the page rendered nothing.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from vtrbench.browse import build_site, page_data
from vtrbench.browse.chromium import find_chromium
from vtrbench.browse.page import render_page
from vtrbench.cli import main

HOSTILE = [
    "<!-- a comment opens here",  # with a later "<script" below: the page went blank
    "a dog <script>alert(1)</script> runs",
    "</script><p id=pwned>escaped</p>",
    "<!--<script>",
    "]]> a CDATA end & an &amp; entity",
    "line\u2028separator\u2029paragraph",
    "nul\x00byte",
    "long " + "word " * 3000,
]


@pytest.fixture(scope="module")
def zeroshot_results(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    res = tmp_path_factory.mktemp("hostile") / "res"
    assert main(["eval", "--cache", str(synth_cache), "--head", "zeroshot", "--results", str(res),
                 "--device", "cpu"]) == 0  # fmt: skip
    return res


@pytest.fixture(scope="module")
def page_json(zeroshot_results: Path, synth_cache: Path) -> dict:
    """The data of a real one-system page (zero-shot: no training)."""
    return page_data(build_site([zeroshot_results], synth_cache, zeroshot_results.parent / "site").page)


def test_every_output_is_checked_before_any_work(
    zeroshot_results: Path, synth_cache: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """browse --output: empty, under /proc, index.html a folder, a file as the folder: one line each
    (they wrote ./index.html, or ended in FileNotFoundError / IsADirectoryError tracebacks)."""
    (tmp_path / "site2" / "index.html").mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    bad = {
        "": "needs a path",
        "/proc/vtrsite": "/proc/vtrsite: cannot write in /proc/vtrsite",
        str(tmp_path / "site2"): "index.html is a folder",
        str(tmp_path / "file" / "site"): "is a file, not a folder",
    }
    for target, says in bad.items():
        code = main(["browse", str(zeroshot_results), "--cache", str(synth_cache), "--output", target])
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2 and says in err and "Traceback" not in err and err.lower().count("error") == 1, (
            target,
            err,
        )
    assert list(work.iterdir()) == [] and list((tmp_path / "site2").iterdir()) == [
        tmp_path / "site2" / "index.html"
    ]


def test_embedded_data_holds_no_markup_and_reads_back(page_json: dict, tmp_path: Path) -> None:
    data = dict(page_json, captions=[HOSTILE[i % len(HOSTILE)] for i in range(len(page_json["captions"]))])
    text = render_page(data)
    start = text.index('<script id="data" type="application/json">')
    block = text[start + len('<script id="data" type="application/json">') : text.index("</script>", start)]
    # the two script elements are the page's own: no caption opened or closed one
    assert text.count("<script") == 2 and text.count("</script>") == 2
    assert not set("<>&\u2028\u2029") & set(block)
    assert json.loads(block)["captions"] == data["captions"]


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed")
def test_hostile_captions_render_literally_in_chromium(page_json: dict, tmp_path: Path) -> None:
    from vtrbench.browse.chromium import dump_dom, selftest

    n = len(page_json["captions"])
    captions = [HOSTILE[i % len(HOSTILE)] + f" #{i}" for i in range(n)]
    page = tmp_path / "index.html"
    page.write_text(render_page(dict(page_json, captions=captions)), encoding="utf-8")
    got = selftest(page)
    assert got["errors"] == [] and got["csp_violations"] == [], got
    assert got["tables"] >= 1 and got["table_rows"] >= 1 and got["cards_a"] + got["cards_b"] > 0
    dom = dump_dom(page)
    assert 'id="pwned"' not in dom  # no caption became an element
    body = dom[dom.index('<div class="cols">') :]
    shown = [html.unescape(c) for c in re.findall(r'<div class="cap">(.*?)</div>', body, flags=re.S)]
    assert shown, "the drill-down shows no caption"
    # each caption shown is one of the hostile ones, character for character
    assert set(shown) <= set(captions), sorted(set(shown) - set(captions))[:3]
    kinds = {next(i for i, h in enumerate(HOSTILE) if s.startswith(h)) for s in shown}
    assert len(kinds) >= 4, kinds  # several of the hostile kinds reached the page's cards
