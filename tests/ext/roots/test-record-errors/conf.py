extensions = ["myst_parser", "nanobook.record_table", "nanobook.values"]
exclude_patterns = ["_build", "_records"]
