"""A small book with the real theme, for the browser tests: a chapter with a quiz and a simulator."""

from pathlib import Path

import nanobook.assets

extensions = ["myst_parser", "nanobook"]
myst_enable_extensions = ["colon_fence"]
exclude_patterns = ["_build"]
html_theme = "sphinx_book_theme"
html_static_path = [str(nanobook.assets.STATIC)]
nanobook_engine_root = str(Path(nanobook.__file__).resolve().parents[2])
nanobook_chapters = [
    {"number": "01", "doc": "01-memory", "title": "Memory", "topic": "Blocks and tables."},
    {"number": "02", "doc": "02-later", "title": "Later", "topic": "Not written yet."},
]
html_context = {"default_mode": "auto"}
html_favicon = str(nanobook.assets.STATIC / "favicon.svg")
