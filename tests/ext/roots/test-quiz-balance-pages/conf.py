extensions = ["myst_parser", "nanobook.quiz"]
myst_enable_extensions = ["colon_fence"]
exclude_patterns = ["_build"]
