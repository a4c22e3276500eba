"""What a log sees of a command (issue 30): the longest silence between two lines, cut cells, file modes.

Runs one command with stdout and stderr into a pipe (so not a terminal: what Slurm, ``nohup`` or
``| tee`` give it), under a chosen umask, stamps each line as it arrives, and prints:

- the longest gaps between two consecutive lines, with the lines around them (while progress lines
  run, and over the whole run);
- lines with rich's ellipsis ``…`` in a table row (a cut cell);
- every file under ``--files`` whose mode lacks group read, or differs from what the umask gives.

    python benchmarks/log_gaps.py --files /tmp/demo -- vtrbench demo --output /tmp/demo
    python benchmarks/log_gaps.py --umask 027 --files results -- vtrbench train --cache C.h5 ...

A leading ``vtrbench`` runs ``python -m vtrbench`` of this interpreter. Run it from anywhere.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_info, print_machine, print_table, write_json  # noqa: E402

PROGRESS = re.compile(r"^\[[^\]]+\] \d+(/\d+)? ")


def run_stamped(argv: list[str], umask: int) -> tuple[list[tuple[float, str]], int, float]:
    """``argv``'s output lines with the seconds since the start at which each arrived."""
    if argv and argv[0] == "vtrbench":
        argv = [sys.executable, "-m", "vtrbench", *argv[1:]]
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=lambda: os.umask(umask),  # noqa: PLW1509 - the child's umask, set before exec
    )
    assert proc.stdout is not None
    lines = [(time.monotonic() - t0, raw.decode("utf-8", "replace").rstrip("\n")) for raw in proc.stdout]
    code = proc.wait()
    return lines, code, time.monotonic() - t0


def gaps(lines: list[tuple[float, str]], top: int = 3) -> list[dict[str, Any]]:
    found = [
        {"seconds": round(b[0] - a[0], 2), "after": a[1][:120], "before": b[1][:120]}
        for a, b in zip(lines, lines[1:], strict=False)
    ]
    return sorted(found, key=lambda g: -g["seconds"])[:top]


def file_modes(folder: Path, umask: int) -> dict[str, Any]:
    want = 0o666 & ~umask
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    modes = {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in files}
    return {
        "files": len(files),
        "expected_mode": oct(want),
        "other_mode": {k: oct(v) for k, v in modes.items() if v != want},
        "no_group_read": sorted(k for k, v in modes.items() if not v & stat.S_IRGRP),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--umask", default="022", help="octal umask of the command [022]")
    ap.add_argument("--files", type=Path, help="check the mode of every file under this folder afterwards")
    ap.add_argument("--log", type=Path, help="also write the stamped log here")
    ap.add_argument("--json", type=Path, help="write every number to this file")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command after --")
    umask = int(args.umask, 8)
    info = machine_info()
    lines, code, seconds = run_stamped(command, umask)
    progress = [i for i, (_, text) in enumerate(lines) if PROGRESS.match(text)]
    during = lines[progress[0] : progress[-1] + 1] if progress else []
    cut = [text for _, text in lines if "…" in text and any(c in text for c in "│┃")]
    out: dict[str, Any] = {
        "machine": info,
        "command": command,
        "exit_code": code,
        "seconds": round(seconds, 2),
        "lines": len(lines),
        "progress_lines": len(progress),
        "longest_gaps_while_progressing": gaps(during),
        "longest_gaps": gaps(lines),
        "cut_cells": cut[:5],
    }
    if args.files is not None:
        out["modes"] = file_modes(args.files, umask)
    if args.log is not None:
        args.log.write_text("".join(f"{t:8.2f} {text}\n" for t, text in lines), encoding="utf-8")
    print_machine(info)
    said = f"umask {umask:03o}, exit {code}, {seconds:.1f} s, {len(lines)} lines"
    print(f"# measured: {' '.join(command)} ({said})")
    while_running = out["longest_gaps_while_progressing"]
    rows = [
        ["first line after (s)", str(round(lines[0][0], 2)) if lines else "-"],
        ["progress lines", str(len(progress))],
        [
            "longest gap while progress lines run (s)",
            str(while_running[0]["seconds"] if while_running else "-"),
        ],
        ["longest gap over the whole run (s)", str(out["longest_gaps"][0]["seconds"] if lines[1:] else "-")],
        ["table rows with a cut cell (…)", str(len(cut))],
    ]
    if "modes" in out:
        m = out["modes"]
        rows += [
            [f"files under {args.files}", str(m["files"])],
            [f"files not {m['expected_mode']}", str(len(m["other_mode"]))],
            ["files without group read", str(len(m["no_group_read"]))],
        ]
    print_table("What the log saw", ["what", "value"], rows)
    for g in while_running:
        print(f"- {g['seconds']} s between\n    {g['after']}\n    {g['before']}")
    write_json(args.json, out)
    return code


if __name__ == "__main__":
    sys.exit(main())
