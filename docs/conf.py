"""Sphinx configuration of the flaskstack documentation (MyST Markdown, the Furo theme).

Built and checked by tests/docs (warnings are errors, every internal link and anchor is
checked, nothing is loaded from outside):

    .venv/bin/python -m sphinx -W --keep-going -n -b html docs docs/_build/html
"""

from __future__ import annotations

project = "flaskstack"
author = "flaskstack developers"
copyright = "flaskstack developers"  # (Sphinx's name for it)

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

# MyST: every heading down to ### gets an anchor, so `page.md#heading` links are checked
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Nothing from outside: no web fonts, no "edit on" links (MathJax loads only on pages with
# math, and there are none: tests/docs checks that no page loads anything from outside)
html_theme = "furo"
html_title = "flaskstack"
html_static_path: list[str] = []
html_theme_options = {"top_of_page_buttons": []}
html_show_sourcelink = False
html_copy_source = False

# Links to the outside are written as links, never fetched: the linkcheck builder is not used
linkcheck_ignore = [r".*"]
nitpicky = True
# Each folder's index lists its first pages by name and gathers the others with a glob (which
# must match at least one page: Sphinx warns on an empty glob)
