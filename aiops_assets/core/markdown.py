"""Escaping for the markdown the UI renders (check summaries, sensor observations, reports).

Service names, column and feature names, reasons, actors and config values come from data and
configuration that anyone with write access to a source folder or a YAML file controls. Put raw
into markdown, a ``|`` adds a table cell, a newline starts a new row, a heading or a list, and
``[text](url)`` or ``<tag>`` forges a link. Every such value goes through :func:`md_text` (prose
and table cells), :func:`md_code` (inline code) or :func:`md_code_block`, so it always renders as
the characters it is, on the line (or in the block) it was put in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Every line break a renderer might honour (CommonMark's \n and \r, and the Unicode separators
# that some renderers and editors also break on), plus the other C0 controls besides tab.
_BREAKS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]+")
# ASCII punctuation with a meaning inline or in a table (CommonMark lets any of them be
# backslash-escaped, and the escape renders as the bare character). One pass, so the backslashes
# it adds are never escaped again. A run of ``_`` between two letters or digits
# (``latency_p99_ms``) can neither open nor close emphasis, so it is left as it is.
_SPECIAL = re.compile(r"[\\`*\[\]<>|&~]|_+")
# At the start of a line these begin a block: a heading, a list item, a thematic break or a
# setext underline.
_LEADING = re.compile(r"^(\d*[.)]|[-+=#])")


def md_text(value: object) -> str:
    """``value`` as literal markdown text, on one line, safe in prose and in a table cell."""
    # Leading spaces or a tab would indent the line into a code block; rendered, they vanish anyway.
    text = _BREAKS.sub(" ", str(value)).lstrip(" \t")
    text = _SPECIAL.sub(_escape, text)
    return _LEADING.sub(lambda match: f"{match[0][:-1]}\\{match[0][-1]}", text, count=1)


def _escape(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    inside_a_word = start > 0 and end < len(text)
    if match[0][0] == "_" and inside_a_word and text[start - 1].isalnum() and text[end].isalnum():
        return match[0]
    return "".join(f"\\{char}" for char in match[0])


def md_code(value: object, *, cell: bool = False) -> str:
    """``value`` as an inline code span on one line; ``cell=True`` inside a table row.

    A code span takes no backslash escapes, so it is fenced with one backtick more than the
    longest run inside it. In a table GFM splits cells before it reads code spans, so there a
    ``|`` is written ``\\|`` (which the table parser turns back into ``|``).
    """
    text = _BREAKS.sub(" ", str(value))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if (
        text.startswith("`")
        or text.endswith("`")
        or (text.strip(" ") and text[0] == text[-1] == " ")
    ):
        text = f" {text} "
    if cell:
        text = text.replace("|", "\\|")
    return f"{fence}{text}{fence}" if text else "` `"


def md_code_block(lines: Sequence[object]) -> str:
    """``lines`` as a fenced code block no line inside can close: the fence is longer than any
    run of backticks they hold."""
    body = [_BREAKS.sub(" ", str(line)) for line in lines]
    longest = max((len(run) for line in body for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([fence, *body, fence])


def md_row(cells: Sequence[object]) -> str:
    """One table row of literal cells: exactly ``len(cells)`` cells, whatever they hold.

    The cells are set off by spaces: an escaped value may end in ``\\``, and GFM would read a
    ``|`` straight after it as escaped.
    """
    return "| " + " | ".join(md_text(cell) for cell in cells) + " |"
