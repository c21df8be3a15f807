from nanobook.assets import STATIC

REPO = STATIC.parents[1]  # the book's repository: its model configs and the bundled model
extensions = ["myst_parser", "nanobook.values"]
nanobook_model_dirs = [str(REPO / "source" / "_data" / "models")]
nanobook_models = {"tiny-shakespeare": str(REPO / "nanovllm" / "data" / "tiny-shakespeare")}
