extensions = ["myst_parser", "nanobook.engine_slice"]
nanobook_engine_packages = ["toyengine"]
exclude_patterns = ["_build"]
