extensions = ["myst_parser", "nanobook.quiz"]
exclude_patterns = ["_build"]
nanobook_chapters = [{"number": "04", "doc": "index", "title": "PagedAttention", "topic": "t"}]
myst_enable_extensions = ["colon_fence"]
