extensions = ["myst_parser", "nanobook.simulator"]
exclude_patterns = ["_build"]
html_baseurl = "https://book.example/"
