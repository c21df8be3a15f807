extensions = ["myst_parser", "nanobook.callouts"]
myst_enable_extensions = ["colon_fence"]
exclude_patterns = ["_build"]
