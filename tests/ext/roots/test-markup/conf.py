extensions = ["myst_parser", "nanobook.quiz", "nanobook.simulator", "nanobook.engine_slice"]
myst_enable_extensions = ["colon_fence"]
nanobook_engine_packages = ["toyengine"]
nanobook_quiz_max_position_share = 1.0
exclude_patterns = ["_build"]
