"""How the book's figures look: one palette, one matplotlib style, SVG that follows the theme.

A figure is drawn once, in the colours of the light (printed) page; the PDF keeps them. For
the web, every colour the style may produce is a *role* (text, muted text, grid, background,
series 1 to 7) and the SVG's colours are rewritten to the theme's CSS variables of that role
(``--pst-color-text-base``, ``--nb-plot-1``, ...), so the same inline SVG reads well in light
and in dark mode and follows the reader's toggle without a second rendering. A colour outside
the roles is an error: it would be the one thing on the page that ignores dark mode.

The series colours are Okabe and Ito's palette for colour-blind readers (blue, vermillion,
bluish green, reddish purple, orange, sky blue, yellow; their black is the text role). The
first four keep a contrast of at least 3:1 against both the light and the dark background;
the others are paler on white, so the style also cycles markers, and a figure never relies on
colour alone.
"""

from __future__ import annotations

import re

# role -> (colour drawn with, which is also the PDF's; CSS the web uses instead)
TEXT = "#222832"
MUTED = "#48566b"
GRID = "#d1d5da"
BACKGROUND = "#ffffff"
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442")
PALETTE_NAMES = ("blue", "vermillion", "bluish green", "reddish purple", "orange", "sky blue",
                 "yellow")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")

ROLES = {
    TEXT: "var(--pst-color-text-base, #222832)",
    MUTED: "var(--pst-color-text-muted, #48566b)",
    GRID: "var(--pst-color-border, #d1d5da)",
    BACKGROUND: "var(--pst-color-background, #ffffff)",
    **{colour: f"var(--nb-plot-{i}, {colour})" for i, colour in enumerate(PALETTE, start=1)},
}
COLORS = {"text": TEXT, "muted": MUTED, "grid": GRID, "background": BACKGROUND}
FONT = "var(--pst-font-family-base, sans-serif)"

SIZE = (6.4, 3.6)  # inches: wide enough for two series and a legend, short enough for a page


def rc(size: tuple[float, float] = SIZE) -> dict:
    """The matplotlib settings of every figure of the book."""
    from cycler import cycler

    return {
        "figure.figsize": size, "figure.dpi": 100, "figure.facecolor": "none",
        "figure.edgecolor": "none", "savefig.facecolor": "none", "savefig.edgecolor": "none",
        "savefig.bbox": "tight", "savefig.pad_inches": 0.05,
        "font.family": "DejaVu Sans", "font.size": 10, "axes.titlesize": 11,
        "axes.labelsize": 10, "legend.fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9,
        "text.color": TEXT, "axes.labelcolor": TEXT, "axes.titlecolor": TEXT,
        "axes.edgecolor": TEXT, "axes.facecolor": "none", "xtick.color": TEXT,
        "ytick.color": TEXT, "axes.grid": True, "grid.color": GRID, "grid.linewidth": 0.6,
        "axes.axisbelow": True, "axes.spines.top": False, "axes.spines.right": False,
        "axes.prop_cycle": cycler(color=list(PALETTE), marker=list(MARKERS)),
        "lines.linewidth": 1.8, "lines.markersize": 5, "patch.edgecolor": BACKGROUND,
        "hatch.color": TEXT, "legend.frameon": True, "legend.facecolor": BACKGROUND,
        "legend.edgecolor": GRID, "legend.framealpha": 0.9, "image.cmap": "cividis",
        "errorbar.capsize": 3, "scatter.edgecolors": "face",
        "svg.fonttype": "none", "svg.hashsalt": "nanobook", "pdf.fonttype": 42,
    }


class PlotColourError(ValueError):
    """The SVG holds colours that are not roles of the book's style."""


_HEX = re.compile(r"#[0-9a-fA-F]{6}\b")
_ID = re.compile(r'\bid="([^"]+)"')


def themed_svg(svg: str, prefix: str, alt: str) -> str:
    """matplotlib's SVG, ready to sit inline in a page.

    Its colours become the theme's variables, its text the page's font, its ids carry
    ``prefix`` (several figures on one page must not share ids), it scales with the column,
    and it is an image whose accessible name is ``alt``.
    """
    from html import escape

    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    ids = _ID.findall(svg)
    for old in sorted(set(ids), key=len, reverse=True):
        new = f"{prefix}-{old}"
        svg = (svg.replace(f'id="{old}"', f'id="{new}"').replace(f"url(#{old})", f"url(#{new})")
               .replace(f'href="#{old}"', f'href="#{new}"'))
    foreign = sorted({c.lower() for c in _HEX.findall(svg)} - set(ROLES))
    if foreign:
        raise PlotColourError(
            f"the figure uses colours outside the book's palette: {', '.join(foreign)}; draw "
            "with palette[0] ... palette[6] (Okabe-Ito: " + ", ".join(PALETTE_NAMES)
            + ") or colors['text'], colors['muted'], colors['grid'], colors['background'], so "
            "that it reads in dark mode and for colour-blind readers")
    svg = _HEX.sub(lambda m: ROLES[m.group(0).lower()], svg)
    svg = re.sub(r"font-family:[^;\"]*", f"font-family: {FONT}", svg)
    head_end = svg.index(">")
    head = svg[:head_end]
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    title_id = f"{prefix}-title"
    head += f' class="nb-plot-svg" role="img" aria-labelledby="{title_id}"'
    return (head + f'><title id="{title_id}">{escape(alt)}</title>' + svg[head_end + 1:]).strip()
