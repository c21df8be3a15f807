extensions = ["myst_parser", "nanobook.executed"]
nanobook_engine_packages = ["toyengine"]
nanobook_gpus = 0
exclude_patterns = ["_build", "_records"]
