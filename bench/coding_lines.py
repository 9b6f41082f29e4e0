"""Lines of code (not blank, comment or docstring lines) of each codec's coding module, here
and at another commit: how much coding each family writes by hand.

    python bench/coding_lines.py [REV]   (REV default 4643251: before the composition layer)

At REV the modules are looked up where that tree kept them (neurocodec/models/<name>.py, the
text codec in byte_lstm.py); here, neurocodec/families/<name>/codec.py and the shared layer
neurocodec/compose/.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLD_NAMES = {"text": "byte_lstm"}


def code_lines(src: str) -> int:
    docs: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docs.update(range(first.lineno, first.end_lineno + 1))
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in skip:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docs)
    return len(lines)


def at(rev: str, path: str) -> str | None:
    p = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None


def main() -> None:
    rev = sys.argv[1] if len(sys.argv) > 1 else "4643251"
    print(f"| codec | {rev} | now |\n|---|---:|---:|")
    for family in sorted(p.name for p in (ROOT / "neurocodec/families").iterdir() if (p / "codec.py").exists()):
        old = at(rev, f"neurocodec/models/{OLD_NAMES.get(family, family)}.py") or at(rev, f"neurocodec/families/{family}/codec.py")
        now = code_lines((ROOT / f"neurocodec/families/{family}/codec.py").read_text())
        print(f"| {family} | {code_lines(old) if old else '-'} | {now} |")
    shared = sum(code_lines(p.read_text()) for p in (ROOT / "neurocodec/compose").glob("*.py"))
    print(f"| (compose/, shared) | - | {shared} |")


if __name__ == "__main__":
    main()
