"""The HTML page of ``vtrbench browse``: one file, CSS and JavaScript inline, data as embedded JSON.

The style and script live in page.css and page.js next to this module and are inlined here.

The Content-Security-Policy meta tag allows inline script and style and ``data:`` images only, so
the page cannot fetch anything (a stray URL is blocked and reported, not loaded). Opening the page
with ``#selftest`` in its URL runs in-page checks (sorting, drill-down, thumbnails decoded, no
errors or blocked requests) and writes them as JSON into ``<pre id="selftest">``; the browser test
reads it with ``chromium --headless --dump-dom`` (tests/report/test_browse.py).
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import Any

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
DEFAULT_SHOWN = 20  # queries listed per direction before "show more"


HEAD = """
<h1 id="title"></h1>
<p class="note" id="prov"></p>
<h2>Ablation table</h2>
<p class="note">The numbers of <code>vtrbench report</code> (mean ± std over seeds; Δ and † vs the baseline).
Click a column header to sort.</p>
<div id="tables"></div>
<ul class="note" id="notes"></ul>
"""

CURVES = """
<section id="sec-curves">
<h2>Training curves</h2>
<p class="note">Each result file's per-epoch <code>history</code>: one colour per system, one line per seed
(hover a line for its seed). The loss is the epoch's mean training loss, the learning rate the one of the
epoch's last step; validation curves exist for runs trained with <code>--val-fraction</code>. Each panel's
axis spans the values shown (not from 0).</p>
<div class="controls"><label>validation metric <select id="valkey"></select></label></div>
<div id="curves"></div>
</section>
"""

DRILL = """
<h2>Per-query drill-down</h2>
<div class="controls">
 <label>A <select id="sysA"></select></label><label id="labB">B <select id="sysB"></select></label>
 <label>queries <select id="dir"><option value="t2v">t2v: captions → videos</option>
  <option value="v2t">v2t: videos → captions</option></select></label>
 <label>caption contains <input id="filter" size="18"></label>
 <label>words from <input id="minlen" type="number" min="0" style="width:4em"> to
  <input id="maxlen" type="number" min="0" style="width:4em"></label>
 <label>verb stream <select id="verb"><option value="">any</option></select></label>
 <label>show <input id="nshow" type="number" min="1" value="{shown}" style="width:4em"> per side</label>
</div>
<p id="summary" class="note"></p>
<p class="note">Ranks are averaged over seeds (a tie counts as the mean of its positions); top-k lists and
their scores come from the lowest seed. The green frame marks the ground-truth video, a dashed orange
frame a video whose score equals the ground truth's; "=" marks a score equal to the one before it
(scores as stored, 6 significant digits; ranks use the tie tolerance in results/README.md). v2t: a
video query's rank is its best caption's under the results' v2t protocol (clip4clip: among each
video's best caption; any-caption: among all captions), the top-5 lists all captions with its own in
green, and the caption filters keep a video when one of its captions passes them. With one system (or
A = B) the lists are its misses, worst first, and the queries it ranks first.</p>
<div class="cols"><div id="winA"></div><div id="winB"></div></div>
"""

GATES = """
<section id="sec-gates">
<h2>Gate summary (CAMoE)</h2>
<p class="note">Per kind of query: how often each expert gets the largest gate weight / its mean weight.</p>
<div id="gates"></div>
</section>
"""

FIGURES = """
<section id="sec-figures">
<h2>Figures</h2>
<div id="figures">{figure}</div>
</section>
"""

NO_FIGURES = "figures (recall@K curves, CAMoE gates) need matplotlib: pip install 'vtrbench[plot]'"


def has_curves(data: dict[str, Any]) -> bool:
    """Whether any system carries a per-epoch history (zero-shot and eval-only results have none)."""
    return any(s.get("history") for s in data.get("systems", []))


def page_body(data: dict[str, Any], figure: str) -> str:
    """The page's sections; a section without data (no training history, no CAMoE gates, no
    matplotlib for the figures) is left out rather than shown empty."""
    parts = [HEAD]
    if has_curves(data):
        parts.append(CURVES)
    parts.append(DRILL.replace("{shown}", str(DEFAULT_SHOWN)))
    if data.get("gate_summary"):
        parts.append(GATES)
    if figure:
        parts.append(FIGURES.replace("{figure}", figure))
    return "".join(parts) + '<pre id="selftest"></pre>\n'


# Characters of JSON text that are not safe inside a <script> element, each as its JSON escape:
# "<" can open "<!--" or "<script" or "</script", which switch the HTML parser into the script-data
# (double) escaped states, where the element's own end tag no longer closes it and a caption could
# swallow the page's script (issue 28); ">" and "&" for the same parser's other states and for
# readers that take the block as HTML; U+2028/U+2029 end a line in older JavaScript parsers.
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_UNSAFE_RE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")


def _escape_unsafe(match: re.Match[str]) -> str:
    ch = match.group()
    # a lone surrogate (from a caption decoded with surrogateescape) cannot be written as UTF-8
    return _SCRIPT_UNSAFE.get(ch) or f"\\u{ord(ch):04x}"


def embed_json(data: Any) -> str:
    """``data`` as JSON text that can sit inside ``<script type="application/json">`` whatever its
    strings hold: the one encoder of every datum embedded in the page. Only characters inside JSON
    strings are escaped (outside them JSON has none of these), so ``json.loads`` reads the same data."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return _UNSAFE_RE.sub(_escape_unsafe, text)


def render_page(data: dict[str, Any]) -> str:
    """The whole page as one string."""
    assets = resources.files("vtrbench.browse")
    style = (assets / "page.css").read_text(encoding="utf-8")
    script = (assets / "page.js").read_text(encoding="utf-8")

    data = dict(data)
    figure = data.pop("figure_svg", "")
    if not figure:
        data["notes"] = [*data.get("notes", []), NO_FIGURES]
    payload = embed_json(data)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(str(data.get('title', 'vtrbench browse')))}</title>\n"
        f"<style>{style}</style></head><body>\n"
        + page_body(data, figure)
        + f'<script id="data" type="application/json">{payload}</script>\n'
        + f"<script>{script}</script>\n</body></html>\n"
    )
