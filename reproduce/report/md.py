"""Markdown pieces every page of the book uses: a verdict's badge and a table cell."""

from __future__ import annotations


def verdict_badge(verdict: str) -> str:
    css = "v-" + verdict.split()[0].replace("not", "no")
    if verdict == "not tested here":
        css = "v-untested"
    return f'<span class="verdict {css}">{verdict}</span>'


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
