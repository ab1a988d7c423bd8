"""Markdown, the second way to write a note (``Note.format == "markdown"``): CommonMark,
with GitHub's tables and strikethrough, rendered by markdown-it-py and then sanitised by the
same allow-list as the editor's HTML (:func:`notes.services.clean_html`): what a Markdown note
can show is exactly what an HTML note can.

The note keeps its Markdown text (``Note.source``, what its writer edits, exports and gets
back from the API) and the rendered HTML (``Note.body``, what pages, feeds, search and
excerpts use).
"""

from __future__ import annotations

from flask_babel import gettext as _
from markdown_it import MarkdownIt

from .text import Unfit

FORMATS = ("html", "markdown")
# markdown-it-py's work grows with the markup characters and the blocks of a text (some tens
# of microseconds each, where plain words cost next to nothing): a Markdown text is bounded
# in both, well above what a note holds (the project's docs: about 4 % markup), so no text
# costs the server more than a few seconds to render
MARKDOWN_MAX = 200_000  # characters
MARKUP = frozenset("[]*_`<&~|\\!")
MARKUP_MAX = 20_000
LINES_MAX = 20_000

# maxNesting: lists and quotes nested deeper are left as text (markdown-it's own bound on its
# work, as notes.text bounds the HTML sanitiser's); HTML written inside Markdown is allowed
# (CommonMark) and goes through the same sanitiser as the rest
_parser = MarkdownIt("commonmark", {"maxNesting": 20}).enable(["table", "strikethrough"])


def render(source: str) -> str:
    """The HTML of ``source`` (not sanitised yet: see notes.services.clean_body); ``Unfit``
    (one line) past the bounds above."""
    if len(source) > MARKDOWN_MAX:
        raise Unfit(_("a Markdown text is at most %(count)s characters (write a longer note "
                      "in rich text)", count=MARKDOWN_MAX))
    if sum(1 for c in source if c in MARKUP) > MARKUP_MAX:
        raise Unfit(_("a Markdown text has at most %(count)s markup characters "
                      "([ ] * _ ` < & ~ | \\ !)", count=MARKUP_MAX))
    if source.count("\n") >= LINES_MAX:
        raise Unfit(_("a Markdown text has at most %(count)s lines", count=LINES_MAX))
    html: str = _parser.render(source)
    return html
