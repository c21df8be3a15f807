"""The book's JavaScript tokenizer (``source/_static/sim/tokenizer/bpe.js``) gives the engine's
token ids for every text, and the engine's text for every list of ids.

The engine tokenizes with the ``tokenizers`` library (``nanovllm.utils.tokenizer``) reading the
bundled model's ``tokenizer.json``; the JavaScript module reads the same file in Node. The
corpus: the Shakespeare validation text (whole and line by line), code, numbers, emoji, CJK,
runs of every kind of white space, the special token, and generated strings that mix all of
those with random code points from every plane.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import unicodedata

import pytest

from tests.conftest import ROOT, require_tool

BPE = ROOT / "source" / "_static" / "sim" / "tokenizer" / "bpe.js"
BUNDLED = ROOT / "nanovllm" / "data" / "tiny-shakespeare"
RUNNER = ROOT / "tests" / "ext" / "run_tokenizer.mjs"
GENERATED = 1500

CODE = [
    "def generate(self, prompts, sampling_params=None):\n    return [p.upper() for p in prompts]\n",
    "for (let i = 0; i < n; i++) {\n\tsum += a[i] * b[i];\n}",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "$ python -m nanovllm generate --prompt 'ROMEO:' --max-tokens 16",
    "x = {'a': [1, 2.5, -3e-9], \"b\": None}  # a comment\r\n",
    "    if (x != y && !done) { return x->next; }",
]
NUMBERS = ["0", "7", "42", "2026", "1,234,567", "3.14159", "-0.5", "1e-9", "0x1F", "12:30",
           "١٢٣", "½", "Ⅻ", "x²", "٣.١٤", "১২৩", "1st 2nd 3rd", "$4.99", "100%", "4,096 tokens"]
EMOJI = ["😀", "👍", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🤖 says hi", "I ❤️ NY", "🙂🙂🙂",
         "a😀b", " 😀 ", "☕", "✔︎", "🏳️‍🌈"]
CJK = ["日本語のテキスト", "中文分词测试", "한국어 문장입니다", "東京 Tokyo 2024", "漢字かなカナ",
       "，。！？", "「引用」", "中 文", "ｆｕｌｌｗｉｄｔｈ"]
SPACES = ["", " ", "  ", "   x", "x   ", "\t", "\t\tindent", "\n", "\n\n\n", "a  \n  b",
          "\r\n", "line\r\nline", " \u00a0 ", "\u3000", "a\u0085b", "\u0085\u0085x", "\ufeff",
          "\ufeffBOM", "x \t y", "trailing   ", "\u2028\u2029", "\u200b", "\u180e\u180ex",
          " " * 40, "\n" * 20, " \n \n ", "\x0b\x0c", "a\x1cb"]
WORDS = ["don't", "I'll", "it's", "THEY'RE", "we've", "rock'n'roll", "'''", "o'er", "'s",
         "ROMEO:", "JULIET.", "Wherefore art thou Romeo?", "naïve café", "Ελληνικά", "Русский",
         "עברית", "العربية", "हिन्दी", "e\u0301", "ǅ", "ﬁ", "Straße",
         "lll", "---", "ooo", "Hellllo", "zzzeee"]  # overlapping pairs: the leftmost merges
SPECIAL = ["<|endoftext|>", "a<|endoftext|>b", "<|endoftext|><|endoftext|>x", "<|endoftext",
           "end <|endoftext|> start", "<|<|endoftext|>|>"]

# Pools the generated strings draw characters from.
POOLS = [
    [chr(c) for c in range(0x20, 0x7F)],
    list(" \t\n\r\x0b\x0c\u0085\u00a0\u1680\u2000\u2007\u200a\u2028\u202f\u205f\u3000\ufeff\u200b"),
    list("0123456789٠١٢٣४५৬௭๘൯½¾²³ⅫⅦ"),
    list("àéîõüñçßøåæœĀăĐęĞıŁńŐřŠťŰžΑβγΔЖщЯ") + [chr(c) for c in range(0x4E00, 0x4E40)],
    [chr(c) for c in range(0xAC00, 0xAC20)] + [chr(c) for c in range(0x3040, 0x3060)],
    ["😀", "👍", "🏽", "\u200d", "\ufe0f", "🇫", "🇷", "🤖", "🎉", "❤", "☕", "𝔘", "𐍈", "𠜎"],
    list("\u0301\u0308\u0327\u05b7\u064b\u093f"),  # combining marks
    list(".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`") + ["'s", "'ll", "'RE", "<|endoftext|>"],
]


def random_code_point(rng: random.Random) -> str:
    """A character from anywhere in Unicode that Python's tables (Unicode 14) assign, or a
    private-use one. Never a lone surrogate, which no text holds, nor an unassigned code point:
    a character that a later Unicode assigns (Node's tables are newer) may be a letter in
    JavaScript and not yet in the library's regex engine, and split differently there."""
    while True:
        c = rng.choice([rng.randint(0, 0x7FF), rng.randint(0x800, 0xFFFF),
                        rng.randint(0x10000, 0x10FFFF)])
        if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn":
            return chr(c)


def generated(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    with gzip.open(ROOT / "tests" / "data" / "shakespeare_words.txt.gz", "rt") as f:
        words = f.read().split()
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 12)):
            roll = rng.random()
            if roll < 0.3:
                parts.append(rng.choice(["", " ", "  ", "\n"]) + rng.choice(words))
            elif roll < 0.85:
                pool = rng.choice(POOLS)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
            else:
                parts.append("".join(random_code_point(rng) for _ in range(rng.randint(1, 4))))
        texts.append("".join(parts))
    return texts


def fixed_corpus() -> list[str]:
    validation = (ROOT / "tests" / "data" / "romeo_and_juliet_validation.txt").read_text()
    return ([validation] + validation.splitlines(keepends=True) + validation.split("\n\n")
            + CODE + NUMBERS + EMOJI + CJK + SPACES + WORDS + SPECIAL)


def run_js(texts: list[str], decode: list[list[int]], module=BPE, tokenizer=None) -> dict:
    node = require_tool("node", "nodejs")
    request = {"module": str(module), "tokenizer": str(tokenizer or BUNDLED / "tokenizer.json"),
               "texts": texts, "decode": decode}
    proc = subprocess.run([node, str(RUNNER)], input=json.dumps(request), capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def engine_tokenizer():
    from nanovllm.utils.tokenizer import Tokenizer

    return Tokenizer(BUNDLED)


def mismatches(texts: list[str], js: dict, tokenizer) -> list[str]:
    """Texts whose ids, tokens or pre-tokens (the pieces BPE works on) differ."""
    out = []
    pre = tokenizer.backend.pre_tokenizer
    for text, got, pieces in zip(texts, js["encoded"], js["pretokens"], strict=True):
        want = tokenizer.backend.encode(text)
        want_pieces = [piece for piece, _ in pre.pre_tokenize_str(text)]
        if got["ids"] != want.ids or got["tokens"] != want.tokens or pieces != want_pieces:
            out.append(f"{text!r}:\n  JavaScript {got['tokens']} {got['ids']} {pieces}\n"
                       f"  engine     {want.tokens} {want.ids} {want_pieces}")
    return out


def test_the_corpus_covers_what_it_claims():
    texts = fixed_corpus() + generated(seed=1, count=GENERATED)
    joined = "".join(texts)
    assert len(generated(seed=1, count=GENERATED)) >= 1000
    for needle in ["Romeo", "def ", "1,234,567", "👨‍👩‍👧‍👦", "日本語", "\u3000", "\u0085",
                   "\ufeff", " " * 40, "<|endoftext|>"]:
        assert needle in joined, needle
    assert any(ord(c) > 0xFFFF for c in joined)  # astral planes, beyond UTF-16's single units


def test_javascript_encodes_as_the_engine(engine_tokenizer):
    texts = fixed_corpus() + generated(seed=20261129, count=GENERATED)
    js = run_js(texts, [])
    assert js["vocabSize"] == engine_tokenizer.vocab_size == 4096
    problems = mismatches(texts, js, engine_tokenizer)
    assert problems == [], f"{len(problems)} of {len(texts)} texts differ:\n" + "\n".join(
        problems[:10])
    total = sum(len(e["ids"]) for e in js["encoded"])
    assert total > 50_000  # the comparison covers many tokens, not a handful


def test_javascript_decodes_as_the_engine(engine_tokenizer):
    """Whole texts come back as they were; random ids (bytes cut mid-character, the special
    token, ids outside the vocabulary) decode to the engine's text, U+FFFD and all."""
    texts = fixed_corpus()[:200] + generated(seed=5, count=200)
    rng = random.Random(11)
    lists = [engine_tokenizer.encode(t) for t in texts]
    lists += [[rng.randint(0, 4200) for _ in range(rng.randint(0, 30))] for _ in range(1000)]
    lists += [[rng.randint(100, 260) for _ in range(rng.randint(1, 6))] for _ in range(500)]
    js = run_js([], lists)
    want = [engine_tokenizer.decode(ids) for ids in lists]
    assert sum("\ufffd" in w for w in want) > 100  # invalid UTF-8 is exercised
    different = [(ids, got, w) for ids, got, w in zip(lists, js["decoded"], want, strict=True)
                 if got != w]
    assert different == [], different[:5]
    for text, got in zip(texts, js["decoded"], strict=False):
        assert got == text.replace("<|endoftext|>", "")  # the special token is skipped


def test_the_examples_the_chapter_names(engine_tokenizer):
    js = run_js(["Hello world", "don't", "a<|endoftext|> b"], [])["encoded"]
    assert js == [
        {"ids": [40, 414, 79, 861], "tokens": ["H", "ell", "o", "Ġworld"]},
        {"ids": [68, 276, 688], "tokens": ["d", "on", "'t"]},
        {"ids": [65, 0, 269], "tokens": ["a", "<|endoftext|>", "Ġb"]},
    ]


# (a line of bpe.js, the same line wrong in one detail)
MUTATIONS = [
    ("if (merge && merge[0] < bestRank)", "if (merge && merge[0] <= bestRank)"),  # rightmost tie
    ('const SPACE = "\\\\p{White_Space}";', 'const SPACE = "\\\\s";'),  # JavaScript's \s
    ("(?!\\\\P{White_Space})", ""),  # white space runs keep their last space
    ("ignoreBOM: true", "ignoreBOM: false"),  # a leading U+FEFF dropped on decoding
    ("(b >= 0xae && b <= 0xff)", "(b >= 0xad && b <= 0xff)"),  # one byte's character moved
]


@pytest.mark.parametrize(("line", "wrong"), MUTATIONS)
def test_the_comparison_sees_a_difference(tmp_path, engine_tokenizer, line, wrong):
    good = BPE.read_text()
    assert good.count(line) == 1, line
    module = tmp_path / "bpe.js"
    module.write_text(good.replace(line, wrong))
    texts = fixed_corpus() + generated(seed=3, count=300)
    lists = [engine_tokenizer.encode(t) for t in texts]
    js = run_js(texts, lists, module=module)
    wrong_encodings = mismatches(texts, js, engine_tokenizer)
    wrong_decodings = [got for ids, got in zip(lists, js["decoded"], strict=True)
                       if got != engine_tokenizer.decode(ids)]
    assert wrong_encodings or wrong_decodings


@pytest.mark.parametrize(("change", "message"), [
    ({"normalizer": {"type": "NFC"}}, 'tokenizer.json: normalizer is {"type":"NFC"}; this '
                                      "tokenizer reads null only"),
    ({"decoder": None}, "tokenizer.json: decoder is null; this tokenizer reads a ByteLevel decoder"),
    ({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}},
     'tokenizer.json: pre_tokenizer is {"type":"ByteLevel","add_prefix_space":false,'
     '"use_regex":false}; this tokenizer reads a ByteLevel pre-tokenizer with "use_regex": true'),
])
def test_a_setting_it_does_not_implement_is_refused_by_name(tmp_path, change, message):
    settings = json.loads((BUNDLED / "tokenizer.json").read_text())
    settings.update(change)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(settings))
    with pytest.raises(RuntimeError) as error:
        run_js(["x"], [], tokenizer=path)
    assert str(error.value) == message
