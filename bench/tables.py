"""Result tables, rendered as plain text for the terminal or as Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Section:
    """One step's table and the statements printed under it."""

    title: str
    headers: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def plain_table(section: Section) -> str:
    if not section.headers:
        return "\n".join([f"== {section.title} ==", *section.notes])
    cells = [section.headers] + [[_cell(v) for v in row] for row in section.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(section.headers))]
    lines = [f"== {section.title} =="]
    for index, row in enumerate(cells):
        lines.append(
            "  ".join(
                text.ljust(width) for text, width in zip(row, widths, strict=True)
            )
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.extend(section.notes)
    return "\n".join(lines)


def markdown_table(section: Section) -> str:
    if not section.headers:
        return ""
    lines = [
        "| " + " | ".join(section.headers) + " |",
        "|" + "---|" * len(section.headers),
    ]
    for row in section.rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)
