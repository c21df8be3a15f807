extensions = ["myst_parser", "nanobook.figure_plot"]
nanobook_engine_packages = ["toyengine"]
exclude_patterns = ["_build", "_records"]
