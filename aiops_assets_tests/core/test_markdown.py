"""The markdown escaping helper, checked with a real CommonMark + GFM-table parser
(markdown-it-py, which Dagster's `rich` brings): whatever a value holds, it stays on its line,
keeps its table cell and renders as the characters it is."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from aiops_assets.core.markdown import md_code, md_code_block, md_row, md_text

PARSER = MarkdownIt("commonmark").enable("table")
# Strings full of what markdown reacts to, line breaks included, plus anything at all.
HOSTILE = st.text(
    alphabet=st.sampled_from(list("ab1é -+=.)#|\\`*_[]()<>&~!:\t\n\r\x0b\x0c\u2028\u2029")),
    max_size=40,
)
ANY = st.one_of(HOSTILE, st.text(max_size=40))
BREAKS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]+")


def _literal(value: str) -> str:
    """What a value should render as: itself, line breaks turned into single spaces."""
    return BREAKS.sub(" ", value)


def _text(tokens: list[Token]) -> str:
    """The characters an inline token renders, ignoring nothing: any markup fails the compare."""
    return "".join(child.content for token in tokens for child in (token.children or []))


def _cells(markdown: str) -> list[list[Token]]:
    """The cells of each table row (header row first)."""
    rows: list[list[Token]] = []
    for token in PARSER.parse(markdown):
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(token)
    return rows


@settings(max_examples=300, deadline=None)
@given(ANY)
def test_escaped_text_has_no_line_break_and_no_bare_pipe(value: str) -> None:
    escaped = md_text(value)
    assert not BREAKS.search(escaped)
    assert "\n" not in escaped and "\r" not in escaped
    # Every | sits after an odd run of backslashes: escaped, however many precede it.
    for match in re.finditer(r"(\\*)\|", escaped):
        assert len(match.group(1)) % 2 == 1, escaped


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY, min_size=1, max_size=5))
def test_a_row_of_escaped_cells_keeps_its_cells_and_their_text(values: list[str]) -> None:
    header = md_row([f"c{index}" for index in range(len(values))])
    rule = "|" + "---|" * len(values)
    markdown = "\n".join([header, rule, md_row(values), md_row(["after"] * len(values))])
    rows = _cells(markdown)
    assert [len(row) for row in rows] == [len(values)] * 3
    for cell, value in zip(rows[1], values, strict=True):
        assert [child.type for child in cell.children or []] in ([], ["text"])
        assert _text([cell]) == _literal(value).strip()
    assert _text(rows[2]) == "after" * len(values)


@settings(max_examples=300, deadline=None)
@given(ANY)
def test_escaped_text_in_a_paragraph_is_one_line_of_plain_text(value: str) -> None:
    tokens = PARSER.parse(f"{md_text(value)}\n\nnext")
    blocks = [token.type for token in tokens if token.nesting >= 0 and token.type != "inline"]
    if _literal(value).strip():
        assert blocks == ["paragraph_open", "paragraph_open"], blocks
        first = next(token for token in tokens if token.type == "inline")
        assert [child.type for child in first.children or []] == ["text"]
        assert _text([first]) == _literal(value).strip()


@settings(max_examples=300, deadline=None)
@given(ANY, st.booleans())
def test_a_code_span_holds_the_value_verbatim_in_text_and_in_a_cell(value: str, cell: bool) -> None:
    span = md_code(value, cell=cell)
    markdown = f"| a | b |\n|---|---|\n| {span} | x |" if cell else span
    inline = [token for token in PARSER.parse(markdown) if token.type == "inline"]
    target = inline[2] if cell else inline[0]
    if cell:
        assert len(inline) == 4
    children = target.children or []
    assert [child.type for child in children] == ["code_inline"], markdown
    expected = _literal(value)
    # CommonMark drops one space each side of a span's content when both are there.
    rendered = children[0].content
    assert rendered in {expected, f" {expected} "} or (not expected and rendered == " ")


@settings(max_examples=200, deadline=None)
@given(st.lists(ANY, max_size=4))
def test_a_code_block_holds_its_lines_whatever_backticks_they_hold(lines: list[str]) -> None:
    tokens = PARSER.parse(md_code_block(lines) + "\n\nafter")
    assert [token.type for token in tokens][:2] == ["fence", "paragraph_open"]
    assert tokens[0].content == "".join(f"{_literal(line)}\n" for line in lines)


def test_the_examples_from_the_issue() -> None:
    assert md_text("api|x\n# boom") == "api\\|x # boom"
    assert md_text("# boom") == "\\# boom"
    assert md_row(["api|x\n# boom", "ok"]) == "| api\\|x # boom | ok |"
    # Between letters or digits `_` cannot make emphasis: column names stay readable.
    assert md_text("latency_p99_ms") == "latency_p99_ms"
    assert md_text("_x_") == "\\_x\\_"
    assert md_text("[click](http://evil)") == "\\[click\\](http://evil)"
    assert md_text("- not a list") == "\\- not a list"
    assert md_text("1. not a list") == "1\\. not a list"
    assert md_code("a`b") == "``a`b``"
