"""The run report as `report.md` and a self-contained `report.html`.

Both are rendered from one `Document`: sections of paragraphs, tables and
images. The HTML embeds each PNG as a base64 data URI, so the file can be
mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.plots import PlotOutcome


@dataclass
class Table:
    header: Sequence[str]
    rows: list[Sequence[str]]


@dataclass
class Image:
    title: str
    path: Path | None
    error: str | None


Block = str | Table | Image


@dataclass
class Section:
    heading: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    sections: list[Section]


def _counterexample(violation: Mapping[str, Any]) -> str:
    parts = []
    if violation.get("job"):
        parts.append(f"job {violation['job']}")
    if violation.get("tokens"):
        parts.append("tokens " + ", ".join(str(t) for t in violation["tokens"]))
    if violation.get("times"):
        parts.append("t " + ", ".join(f"{t:.3f}" for t in violation["times"][:4]))
    parts.append(str(violation.get("message", "")))
    return "; ".join(parts)


def invariants_table(invariants: Mapping[str, Mapping[str, Any]]) -> Table:
    rows: list[Sequence[str]] = []
    for name, verdict in sorted(invariants.items()):
        violations = verdict.get("violations") or []
        first = _counterexample(violations[0]) if violations else ""
        result = "ok" if verdict.get("ok") else "VIOLATED"
        rows.append(
            (name, result, str(verdict.get("checked", "")), str(len(violations)), first)
        )
    header = ("invariant", "result", "checked", "violations", "first counterexample")
    return Table(header, rows)


def _facts(summary: Mapping[str, Any], description: str | None) -> list[Block]:
    server = summary.get("server") or {}
    server_text = f"{server.get('name', '?')} {server.get('version', '?')}"
    if server.get("mongodb_version"):
        server_text += f" (reports MongoDB {server['mongodb_version']})"
    invariants = summary.get("invariants") or {}
    violated = [name for name, verdict in invariants.items() if not verdict.get("ok")]
    result = (
        "all invariants hold"
        if not violated
        else "VIOLATED: " + ", ".join(sorted(violated))
    )
    rows: list[Sequence[str]] = [
        ("result", result),
        ("scenario", str(summary.get("scenario", "?"))),
        ("seed", str(summary.get("seed"))),
        ("break", str(summary.get("break") or "none")),
        ("server", server_text),
        ("database", str(summary.get("database", "?"))),
        ("drained", str(summary.get("drained"))),
    ]
    blocks: list[Block] = []
    if description:
        blocks.append(description)
    blocks.append(Table(("field", "value"), rows))
    return blocks


def _coverage(coverage: Mapping[str, Any]) -> list[Block]:
    expected = ", ".join(coverage.get("expected") or []) or "nothing"
    blocks: list[Block] = [f"Expected events: {expected}."]
    for message in coverage.get("missing") or []:
        blocks.append(f"MISSING: {message}")
    counts = coverage.get("counts") or {}
    blocks.append(Table(("event", "count"), [(k, str(v)) for k, v in counts.items()]))
    return blocks


def _stats(summary: Mapping[str, Any]) -> list[Block]:
    stats = summary.get("stats") or {}
    blocks: list[Block] = [
        Table(("stat", "value"), [(k, str(v)) for k, v in stats.items()])
    ]
    duplicates = summary.get("duplicates") or {}
    by_reason = duplicates.get("by_reason") or {}
    if by_reason:
        blocks.append("Extra handler runs by reason:")
        blocks.append(
            Table(("reason", "runs"), [(k, str(v)) for k, v in by_reason.items()])
        )
    faults = summary.get("faults") or {}
    if faults:
        rows: list[Sequence[str]] = [
            (kind, ", ".join(f"{state} {n}" for state, n in states.items()))
            for kind, states in faults.items()
        ]
        blocks.append(Table(("fault", "occurrences by state"), rows))
    return blocks


def build_document(
    summary: Mapping[str, Any],
    plots: Sequence[PlotOutcome],
    *,
    description: str | None = None,
    plot_seconds: float | None = None,
) -> Document:
    """Assemble the report from the summary and the drawn plots."""
    plot_blocks: list[Block] = [
        Image(outcome.spec.title, outcome.path, outcome.error) for outcome in plots
    ]
    if plot_seconds is not None:
        plot_blocks.append(f"Plots drawn in {plot_seconds:.2f} s.")
    sections = [
        Section("Run", _facts(summary, description)),
        Section("Invariants", [invariants_table(summary.get("invariants") or {})]),
        Section("Coverage", _coverage(summary.get("coverage") or {})),
        Section("Stats", _stats(summary)),
        Section("Plots", plot_blocks),
    ]
    return Document(f"Chaos run report: {summary.get('scenario', '?')}", sections)


# -- Markdown -----------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(cell) for cell in table.header) + " |"]
    lines.append("|" + "---|" * len(table.header))
    lines += [
        "| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in table.rows
    ]
    return lines


def render_markdown(document: Document) -> str:
    lines = [f"# {document.title}", ""]
    for section in document.sections:
        lines += [f"## {section.heading}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines += _md_table(block)
            elif isinstance(block, Image):
                lines.append(f"### {block.title}")
                lines.append("")
                if block.path is not None:
                    lines.append(f"![{block.title}]({block.path.name})")
                else:
                    lines.append(f"Plot failed: {block.error}")
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


# -- HTML ---------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
th { background: #f2f2f2; }
td.violated, p.violated { color: #b00020; font-weight: bold; }
td.ok { color: #1b7f3b; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def _html_cell(text: str) -> str:
    if text == "VIOLATED" or text.startswith(("VIOLATED:", "MISSING:")):
        return f'<td class="violated">{html.escape(text)}</td>'
    if text in ("ok", "all invariants hold"):
        return f'<td class="ok">{html.escape(text)}</td>'
    return f"<td>{html.escape(text)}</td>"


def _html_table(table: Table) -> str:
    header = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header)
    rows = "".join(
        "<tr>" + "".join(_html_cell(cell) for cell in row) + "</tr>"
        for row in table.rows
    )
    head = f"<tr>{header}</tr>" if any(table.header) else ""
    return f"<table>{head}{rows}</table>"


def _html_image(image: Image) -> str:
    title = f"<h3>{html.escape(image.title)}</h3>"
    if image.path is None:
        return f'{title}<p class="violated">Plot failed: {html.escape(str(image.error))}</p>'
    data = base64.b64encode(image.path.read_bytes()).decode("ascii")
    alt = html.escape(image.title)
    return f'{title}<img alt="{alt}" src="data:image/png;base64,{data}">'


def render_html(document: Document) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(document.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(document.title)}</h1>",
    ]
    for section in document.sections:
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(_html_table(block))
            elif isinstance(block, Image):
                parts.append(_html_image(block))
            else:
                css = ' class="violated"' if block.startswith("MISSING:") else ""
                parts.append(f"<p{css}>{html.escape(block)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
