"""Text as the site stores it: what every write path (form, API, admin, import, CLI) passes
its text fields through, and what the sanitiser may be asked to do.

- Control characters (C0 but tab and line breaks, DEL, C1), non-characters (U+FFFE, U+FDD0…)
  and lone surrogates are removed: no stored text can make the feed or the sitemap invalid XML,
  nor carry a terminal escape (``\\x1b``) into a log or a spreadsheet.
- One-line fields (titles, tags, names) also have their line breaks and tabs made spaces.
- Markup is bounded in what the sanitiser's work costs, before it runs: elements left open
  (nesting depth) and elements in all. html5ever (under nh3) walks the stack of open elements
  for every tag: with the depth bounded its cost is linear in the input's size.
"""

from __future__ import annotations

import re

from flask_babel import gettext as _

# XML 1.0's Char production excludes these; Unicode's non-characters and C1 go too
_REMOVED = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17))
    + "]")
_LINE = re.compile("[\t\n\r\u2028\u2029\x85]")

MAX_DEPTH = 100  # elements open at once (a note's lists and tables nest a few deep)
MAX_FORMATTING = 10  # bold, italic, links… opened and not closed (the parser reopens them)
MAX_ELEMENTS = 300_000  # tags in one body (a 1,000,000-character table: one per 3 characters)
VOID = frozenset(("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                  "param", "source", "track", "wbr"))
FORMATTING = frozenset(("a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small",
                        "strike", "strong", "tt", "u"))
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)")


class Unfit(ValueError):
    """Text that is not stored: ``str()`` says why in one line."""


def clean_text(text: str, multiline: bool = False) -> str:
    """``text`` without control characters, non-characters and lone surrogates; unless
    ``multiline``, its line breaks and tabs become spaces."""
    text = _REMOVED.sub("", text)
    return text if multiline else _LINE.sub(" ", text)


def xml_safe(text: str) -> str:
    """What XML 1.0 can carry of ``text`` (for documents written from stored text)."""
    return _REMOVED.sub("", text)


def check_markup(html: str) -> None:
    """``Unfit`` if ``html`` would cost the sanitiser more than linear work: more than
    :data:`MAX_ELEMENTS` tags, elements open more than :data:`MAX_DEPTH` deep, or more than
    :data:`MAX_FORMATTING` formatting elements left unclosed (an HTML parser reopens those in
    every following paragraph). One pass over the tags, with a stack of at most
    :data:`MAX_DEPTH` names: an upper bound of what a browser's parser keeps open, since an
    element is only taken as closed by its own end tag."""
    elements = 0
    stack: list[str] = []
    unclosed: list[str] = []  # formatting elements opened, not yet closed by their end tag
    for match in _TAG.finditer(html):
        elements += 1
        if elements > MAX_ELEMENTS:
            raise Unfit(_("the text has more than %(count)s HTML elements", count=MAX_ELEMENTS))
        name = match.group(2).lower()
        if match.group(1):  # an end tag closes its element and what is open inside it
            if name in stack:
                del stack[len(stack) - 1 - stack[::-1].index(name):]
            if name in unclosed:
                del unclosed[len(unclosed) - 1 - unclosed[::-1].index(name)]
            continue
        if name in VOID:
            continue
        stack.append(name)
        if len(stack) > MAX_DEPTH:
            raise Unfit(_("the text nests HTML elements more than %(count)s deep (an unclosed "
                          "list or quote?)", count=MAX_DEPTH))
        if name in FORMATTING:
            unclosed.append(name)
            if len(unclosed) > MAX_FORMATTING:
                raise Unfit(_("the text leaves more than %(count)s bold, italic or link "
                              "elements open", count=MAX_FORMATTING))
