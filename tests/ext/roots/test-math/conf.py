from nanobook.assets import STATIC

extensions = ["myst_parser", "nanobook.offline_math"]
myst_enable_extensions = ["dollarmath", "amsmath"]
html_static_path = [str(STATIC)]
mathjax_path = "mathjax/tex-svg-full.js"
mathjax3_config = {"options": {"enableMenu": False}}
