"""Split a function's docstring into its description and per-parameter docs (`@tool`)."""

from __future__ import annotations

import inspect
import re

__all__ = ("parse_docstring",)

_GOOGLE_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Returns?|Yields?|Raises|Examples?|Notes?|Warnings?):\s*$"
)
_GOOGLE_ARG = re.compile(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")
_SPHINX_FIELD = re.compile(
    r"^:(param|parameter|arg|argument|key|keyword|type|returns?|rtype|raises?|except|"
    r"exception|yields?|ytype|var|ivar|cvar|vartype|meta)\b[^:]*:"
)
_SPHINX_PARAM = re.compile(r"^:param\s+(?:\w+\s+)?(\w+):\s*(.+)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a docstring into its description and per-parameter docs.

    Understands Google style (`Args:` then `name: text`, continuation lines indented
    further) and Sphinx (`:param name: text`). Other sections (`Returns:`, `Raises:`,
    `:rtype:`...) are left out of the description.
    """
    params: dict[str, str] = {}
    summary_lines: list[str] = []
    section: str | None = None  # the Google section we are in; None in the description
    field_indent: int | None = None  # indent of the entry whose deeper lines continue it
    arg: str | None = None  # the parameter that entry documents; None: not a parameter
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if field_indent is not None and stripped and indent > field_indent:
            if arg is not None:
                params[arg] += " " + stripped
            continue
        header = _GOOGLE_SECTION.match(stripped)
        if header and not indent:
            section, field_indent = header.group(1), None
            continue
        if section is not None and stripped and not indent:
            section = None  # unindented text ends a section
        entry = None
        if section is None and _SPHINX_FIELD.match(stripped):
            entry = _SPHINX_PARAM.match(stripped)
        elif section in ("Args", "Arguments", "Parameters") and stripped:
            entry = _GOOGLE_ARG.match(stripped)
        elif section is None:
            field_indent = None
            summary_lines.append(line)
            continue
        if stripped:
            field_indent, arg = indent, entry.group(1) if entry else None
            if entry:
                params[entry.group(1)] = entry.group(2).strip()
    return "\n".join(summary_lines).strip(), params
