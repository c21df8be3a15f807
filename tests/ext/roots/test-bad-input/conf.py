extensions = ["myst_parser", "nanobook.quiz", "nanobook.simulator", "nanobook.engine_slice",
              "nanobook.executed"]
myst_enable_extensions = ["colon_fence"]
nanobook_engine_packages = ["toyengine"]
nanobook_gpus = 0
nanobook_quiz_max_position_share = 1.0  # the balance of answers is not what this book tests
exclude_patterns = ["_build"]
