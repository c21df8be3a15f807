extensions = ["myst_parser", "nanobook.values"]
exclude_patterns = ["_build", "models"]
nanobook_model_dirs = ["models"]
nanobook_models = {"tiny": "models/acme/tiny-7"}
nanobook_engine_packages = ["toyengine"]
