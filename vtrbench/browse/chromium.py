"""Headless Chromium for the page's checks and screenshots (tests/report/test_browse.py, tools/).

Plain ``chromium --headless`` driven as a subprocess, no Python driver: ``--dump-dom`` returns
the DOM after the page's script ran (``--virtual-time-budget`` lets its promises finish), and the
page's ``#selftest`` mode writes its own checks into that DOM. Nothing to install beyond Debian's
``chromium`` package, no driver/browser version pairing to keep in step (Playwright and Selenium
both need one), and the same command works on a laptop and in CI.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from vtrbench.errors import VtrbenchError

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
VIRTUAL_TIME_MS = 10000  # virtual time: the page's timers and promises run; costs little real time


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable, or None. ``VTRBENCH_CHROMIUM`` overrides the search."""
    env = os.environ.get("VTRBENCH_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(
    page: Path, extra: list[str], fragment: str = "", timeout: float = 120
) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise VtrbenchError("no Chromium found (install Debian's chromium package or set VTRBENCH_CHROMIUM)")
    url = Path(page).resolve().as_uri() + fragment
    with tempfile.TemporaryDirectory(prefix="vtrbench-chromium-") as profile:
        return subprocess.run(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def selftest(page: Path, attempts: int = 3, width: int | None = None) -> dict[str, Any]:
    """Open ``page#selftest`` and return the checks it wrote (see vtrbench/browse/page.js).
    ``width``: the window's width in CSS pixels (default: the browser's)."""
    marker = '<pre id="selftest">'
    last = ""
    size = [f"--window-size={width},1000"] if width else []
    for _ in range(attempts):  # a loaded machine can end the dump before the page's promises ran
        proc = _run(page, [*size, "--dump-dom"], "#selftest")
        dom = proc.stdout
        at = dom.find(marker)
        if at >= 0:
            end = dom.find("</pre>", at)
            body = dom[at + len(marker) : end]
            if body.strip():
                return json.loads(html.unescape(body))
        last = proc.stderr[-2000:]
    raise RuntimeError(f"the page's self-test did not report (chromium stderr tail: {last})")


def dump_dom(page: Path, fragment: str = "") -> str:
    """The serialised DOM of ``page`` after its script ran (``chromium --headless --dump-dom``)."""
    return _run(page, ["--dump-dom"], fragment).stdout


def screenshot(page: Path, out: Path, width: int = 1300, height: int = 1400, fragment: str = "") -> Path:
    """A PNG of the page at ``width`` x ``height`` CSS pixels."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(page, [f"--window-size={width},{height}", f"--screenshot={out}"], fragment)
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {out}")
    return out
