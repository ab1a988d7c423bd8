"""Markdown, the second way to write a note (``Note.format == "markdown"``): CommonMark,
with GitHub's tables and strikethrough, rendered by markdown-it-py and then sanitised by the
same allow-list as the editor's HTML (:func:`notes.services.clean_html`): what a Markdown note
can show is exactly what an HTML note can.

The note keeps its Markdown text (``Note.source``, what its writer edits, exports and gets
back from the API) and the rendered HTML (``Note.body``, what pages, feeds, search and
excerpts use).
"""

from __future__ import annotations

from markdown_it import MarkdownIt

FORMATS = ("html", "markdown")

# maxNesting: lists and quotes nested deeper are left as text (markdown-it's own bound on its
# work, as notes.text bounds the HTML sanitiser's); HTML written inside Markdown is allowed
# (CommonMark) and goes through the same sanitiser as the rest
_parser = MarkdownIt("commonmark", {"maxNesting": 20}).enable(["table", "strikethrough"])


def render(source: str) -> str:
    """The HTML of ``source`` (not sanitised yet: see notes.services.clean_body)."""
    html: str = _parser.render(source)
    return html
