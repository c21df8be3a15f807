"""The tokenizer playground of chapter 1: the reader types text and sees its tokens.

The page runs the bundled model's own ``tokenizer.json`` in JavaScript
(``_static/sim/tokenizer/bpe.js``, which the view fetches from
``_static/sim/tokenizer/tiny-shakespeare.json``, a copy the build makes of the engine's file).
``tests/ext/test_tokenizer_js.py`` holds the JavaScript to the engine's tokenizer, text for
text and id for id, so this module has no logic of its own to replay: it names the file,
gives the view its example texts, and prints the examples' tokens for the PDF, as the engine's
tokenizer makes them.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes

from . import Param, Widget, printed

TOKENIZER_URL = "sim/tokenizer/tiny-shakespeare.json"  # under _static/

# (button label, text): what a reader might try first. Each shows a different rule at work.
EXAMPLES = (
    ("Shakespeare", "ROMEO:\nBut soft, what light through yonder window breaks?"),
    ("A word", "wherefore"),
    ("A number", "3,141,592"),
    ("An emoji", "🎭"),
    ("Code", "for i in range(10):\n    print(i ** 2)"),
    ("Chinese", "生存还是毁灭"),
)


def bundled_folder() -> Path:
    from nanovllm.engine.llm_engine import resolve_model_folder

    return resolve_model_folder("")


def engine_tokenizer():
    from nanovllm.utils.tokenizer import Tokenizer

    return Tokenizer(bundled_folder())


def static_files() -> dict[str, Path]:
    return {TOKENIZER_URL: bundled_folder() / "tokenizer.json"}


def shown_token(token: str) -> str:
    """A token as the reader sees it: its text with spaces, tabs and line breaks made visible,
    or its bytes in hex when they are only part of a character."""
    from nanovllm.utils.byte_tokenizer import byte_to_character

    byte_of = {c: b for b, c in byte_to_character().items()}
    if not all(c in byte_of for c in token):  # an added token, such as <|endoftext|>
        return token
    raw = bytes(byte_of[c] for c in token)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return " ".join(f"{b:02X}" for b in raw)
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")


def for_print(text: str) -> str:
    """The text as the PDF can set it: line breaks as ↵, and a character of the wide East Asian
    scripts or beyond the Basic Multilingual Plane (an emoji) as its code point, U+XXXX, since
    the book's fonts have no glyph for them."""
    import unicodedata

    def one(c: str) -> str:
        if ord(c) > 0xFFFF or unicodedata.east_asian_width(c) in ("W", "F"):
            return f"U+{ord(c):04X} "
        return "↵" if c == "\n" else c

    return "".join(one(c) for c in text).strip()


def tokens_of(text: str) -> list[tuple[str, int]]:
    encoding = engine_tokenizer().backend.encode(text)
    return [(shown_token(t), i) for t, i in zip(encoding.tokens, encoding.ids, strict=True)]


def data(params: dict) -> dict:
    tokenizer = engine_tokenizer()
    return {"tokenizer": TOKENIZER_URL, "vocabSize": tokenizer.vocab_size, "text": params["text"],
            "examples": [{"label": label, "text": text} for label, text in EXAMPLES]}


def static_form(params: dict, payload: dict) -> list[nodes.Node]:
    """The examples' tokens, as the engine's tokenizer cuts them, one row per text."""
    rows = []
    for _, text in EXAMPLES:
        pieces = tokens_of(text)
        chips = nodes.paragraph()
        for i, (shown, token_id) in enumerate(pieces):
            if i:
                chips += nodes.Text(" ")
            chips += nodes.literal("", shown)
            chips += nodes.Text(f" {token_id}")
        rows.append([nodes.paragraph("", for_print(text)), chips,
                     f"{len(text)} → {len(pieces)}"])
    table = printed.table((30, 56, 14), ["Text", "Tokens (id)", "Characters → tokens"],
                                    rows, ["nb-tok-table"])
    caption = printed.caption(
        f"The playground's example texts, cut by the engine's tokenizer "
        f"({payload['vocabSize']:,} tokens) when this book was built. In the first column, U+ "
        "numbers stand for characters the printed book has no letters for (an emoji, Chinese).")
    return [caption, table]


WIDGET = Widget(
    name="tokenizer-playground",
    title="Tokenizer playground",
    view="sim/tokenizer-playground/view.js",
    params={"text": Param(str, EXAMPLES[0][1], help="the text shown first")},
    data=data,
    static_form=static_form,
    css=("sim/tokenizer-playground/style.css",),
    engine_modules=("nanovllm.utils.tokenizer",),
    engine_files=("nanovllm/data/**/tokenizer.json",),
    static_files=static_files,
)
