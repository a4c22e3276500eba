"""Limit mutmut 2 to some functions of a file: mark every other line ``# pragma: no mutate``.

    python tools/mutation_scope.py FILE NAME [NAME ...]

Run on the scratch copy made by tools/mutation.sh, never on the checkout. NAME is a top-level
function, a class, or ``Class.method``. Only lines that end outside a string get the comment
(appending it inside a multi-line string would change the string).
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

PRAGMA = "  # pragma: no mutate"


def scoped_lines(tree: ast.Module, names: set[str]) -> set[int]:
    keep: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name in names:
            keep.update(range(node.lineno, node.end_lineno + 1))
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and f"{node.name}.{item.name}" in names:
                    keep.update(range(item.lineno, item.end_lineno + 1))
    return keep


def main(path: Path, names: set[str]) -> None:
    source = path.read_text()
    tree = ast.parse(source)
    keep = scoped_lines(tree, names)
    found = {n.split(".")[0] for n in names}
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    if found - defined:
        raise SystemExit(f"{path}: no top-level {sorted(found - defined)}")
    ends = {
        tok.start[0]
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type in (tokenize.NEWLINE, tokenize.NL)
    }
    lines = source.splitlines()
    out = [
        line + PRAGMA if (i not in keep and i in ends and line.strip()) else line
        for i, line in enumerate(lines, start=1)
    ]
    path.write_text("\n".join(out) + "\n")
    print(f"{path}: mutating {len(keep)} lines of {sorted(names)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), set(sys.argv[2:]))
