"""Writing a bench/results/*.md page: a title, a paragraph on how it was made, a table."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_table(name: str, title: str, how: str, columns: list[str], rows: Iterable[str], notes: str = "") -> Path:
    """bench/results/`name`: `columns` are the header cells (a leading `<` left-aligns a
    column, else it is right-aligned); `rows` are ready-made `| a | b |` lines."""
    align = ["---" if c.startswith("<") else "---:" for c in columns]
    lines = [
        f"# {title}",
        "",
        how,
        "",
        "| " + " | ".join(c.lstrip("<") for c in columns) + " |",
        "|" + "|".join(align) + "|",
        *rows,
        "",
    ]
    if notes:
        lines += [notes, ""]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text("\n".join(lines))
    return path
