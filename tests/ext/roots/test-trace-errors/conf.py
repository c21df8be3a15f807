"""Simulators whose data comes from running the real engine (the repository's nanovllm)."""

from pathlib import Path

import nanobook

extensions = ["myst_parser", "nanobook.simulator"]
exclude_patterns = ["_build"]
html_baseurl = "https://book.example/"
nanobook_engine_root = str(Path(nanobook.__file__).resolve().parents[2])
