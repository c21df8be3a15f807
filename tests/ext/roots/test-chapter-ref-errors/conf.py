extensions = ["myst_parser", "nanobook.chapter_ref"]
exclude_patterns = ["_build"]
nanobook_chapters = [
    {"number": "01", "doc": "01-memory", "title": "Memory", "topic": "Blocks."},
    {"number": "02", "doc": "02-later", "title": "Later & Sooner", "topic": "Not written yet."},
]
latex_documents = [("index", "book.tex", "Book", "Authors", "manual")]
