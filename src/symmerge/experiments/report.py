"""The Markdown report writer: tables, sections and reports.

A report is a list of :class:`ReportSection` objects; every experiment result gives its
own (:meth:`symmerge.experiments.results.ExperimentResult.sections`, prose from
:mod:`symmerge.experiments.sections`). :func:`write_report` composes the sections of
several results into one report anywhere on disk (image links are made relative to it).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from symmerge.utils.io import atomic_path

if TYPE_CHECKING:
    from symmerge.experiments.evidence import Finding


def _fmt(value: Any, digits: int = 4) -> str:
    """A table cell: floats with ``digits`` significant digits, NaN / None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], *, digits: int = 4
) -> str:
    """A Markdown table; ``columns`` are ``(key, header)`` pairs, missing keys show ``-``."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(k), digits) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


@dataclass
class ReportSection:
    """One report section: a heading, free Markdown, an optional table and images.

    ``images`` are ``(caption, absolute or cwd-relative path)``; links are made
    relative to the report file when rendered.
    """

    title: str
    text: str = ""
    table: str = ""
    images: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self, report_dir: str | os.PathLike[str], level: int = 2) -> str:
        parts = [f"{'#' * level} {self.title}"]
        if self.text:
            parts.append(self.text.strip())
        if self.table:
            parts.append(self.table.strip())
        for caption, path in self.images:
            rel = os.path.relpath(Path(path).resolve(), Path(report_dir).resolve())
            parts.append(f"![{caption}]({Path(rel).as_posix()})")
        if self.notes:
            parts.append("\n".join(f"- {n}" for n in self.notes))
        return "\n\n".join(parts) + "\n"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return _jsonable(obj.item())
    return obj


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Atomically write ``data`` as indented, key-sorted JSON (NaN/inf become null)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")
    return Path(path)


class HasSections(Protocol):
    """A result with report sections (every experiment result)."""

    def sections(self) -> list[ReportSection]: ...


def write_report(
    path: str | os.PathLike[str],
    results: Sequence[HasSections | ReportSection],
    *,
    title: str | None = "symmerge report",
    intro: str = "",
    findings: Sequence[Finding] = (),
) -> Path:
    """Compose the sections of ``results`` (experiment results or bare sections) into one
    Markdown file, atomically; image links are relative to ``path``'s folder (a result
    that was not saved has no images).

    The report opens (after the title) with a ``Summary``: ``findings`` and then every
    result's own (:mod:`symmerge.experiments.findings`), in plain words, and what cannot
    be judged at this size (:mod:`symmerge.experiments.evidence`); none without findings.
    """
    from symmerge.experiments.evidence import summary_markdown
    from symmerge.experiments.findings import findings_of

    path = Path(path)
    report_dir = path.parent if str(path.parent) else Path(".")
    parts = []
    if title:
        parts.append(f"# {title}\n")
    summary = summary_markdown([*findings, *findings_of(results)])
    if summary:
        parts.append(summary)
    if intro:
        parts.append(intro.strip() + "\n")
    for item in results:
        sections = [item] if isinstance(item, ReportSection) else item.sections()
        parts.extend(s.to_markdown(report_dir) for s in sections)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
    return path
