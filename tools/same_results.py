"""Do two folders of result files hold the same results? (A check for refactors, not part of CI.)

    python tools/same_results.py /tmp/demo-before/results /tmp/demo-after/results

Every result JSON under the first folder must exist under the second with the same name and the same
content, byte for byte after parsing, except for what says when and where it was made: the
``created_utc`` timestamp, the wall-clock ``timing`` and the per-epoch ``seconds`` and ``pairs_per_s``
of ``history``, and ``provenance`` (software versions, git commit, the command line, threads). Grid
files (``grid-*.toml``) are compared as text without their ``# cache:`` line (it names the folder).
Exits 1 and lists the first differing keys of each file when anything else differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

VOLATILE_TOP = ("created_utc", "timing", "provenance")
VOLATILE_HISTORY = ("seconds", "pairs_per_s")


def stable(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without the keys that say when and where it was made."""
    out = {k: v for k, v in result.items() if k not in VOLATILE_TOP}
    out["history"] = [
        {k: v for k, v in epoch.items() if k not in VOLATILE_HISTORY} for epoch in result.get("history", [])
    ]
    return out


def differences(a: Any, b: Any, where: str = "", limit: int = 5) -> list[str]:
    """Paths at which ``a`` and ``b`` differ (at most ``limit``)."""
    if type(a) is not type(b):
        return [f"{where or '.'}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, dict):
        out = [f"{where}.{k}: only on one side" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], f"{where}.{k}", limit)
            if len(out) >= limit:
                break
        return out[:limit]
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += differences(x, y, f"{where}[{i}]", limit)
            if len(out) >= limit:
                break
        return out[:limit]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"[:200]]


def compare(before: Path, after: Path) -> list[str]:
    problems = []
    files = sorted(p.relative_to(before) for p in before.rglob("*") if p.suffix in (".json", ".toml"))
    if not files:
        return [f"no result files under {before}"]
    for rel in files:
        other = after / rel
        if not other.is_file():
            problems.append(f"{rel}: missing in {after}")
        elif rel.suffix == ".toml":
            strip = lambda p: [line for line in p.read_text().splitlines() if not line.startswith("# cache:")]  # noqa: E731
            if strip(before / rel) != strip(other):
                problems.append(f"{rel}: grid files differ")
        else:
            diff = differences(
                stable(json.loads((before / rel).read_text())), stable(json.loads(other.read_text()))
            )
            problems += [f"{rel}: {d}" for d in diff]
    extra = sorted(
        p.relative_to(after) for p in after.rglob("*.json") if not (before / p.relative_to(after)).exists()
    )
    problems += [f"{rel}: only in {after}" for rel in extra]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    problems = compare(args.before, args.after)
    n = sum(1 for p in args.before.rglob("*") if p.suffix in (".json", ".toml"))
    if problems:
        print("\n".join(problems))
        print(f"{len(problems)} difference(s) in {n} files")
        return 1
    print(f"{n} files: the same results (timestamps, timings and provenance aside)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
