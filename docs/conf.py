"""Sphinx configuration: the docs are MyST Markdown, built by the test suite.

`tests/test_sphinx.py` builds them with warnings as errors, so a broken link
between pages or a missing page fails the suite.
"""

project = "labsky"
author = "the labsky developers"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
nitpicky = True
html_theme = "alabaster"
suppress_warnings: list[str] = []
