"""A minimal byte-level tokenizer: one token per byte, plus three special tokens.

Random checkpoints need *some* tokenizer so that their folder is complete and the
engine can turn text into ids and back. Byte-level is the simplest one that can encode
any text: token ``b`` is byte ``b``. Like GPT-2 style tokenizers it spells bytes as
printable characters (so the vocabulary is valid JSON text): printable Latin-1 bytes
stand for themselves and the others are moved to code points 256 and up, in order.
"""

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 256, 257, 258
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_to_character() -> dict[int, str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in printable]
    mapping = {b: chr(b) for b in printable}
    mapping.update({b: chr(256 + i) for i, b in enumerate(moved)})
    return mapping


def build_byte_tokenizer() -> Tokenizer:
    vocab = {character: byte for byte, character in byte_to_character().items()}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


def write_byte_tokenizer(folder: str | Path) -> dict[str, int]:
    """Write tokenizer.json and tokenizer_config.json; return the special tokens' ids."""
    folder = Path(folder)
    tokenizer = build_byte_tokenizer()
    tokenizer.save(str(folder / "tokenizer.json"))
    settings = {"eos_token": "<|im_end|>", "bos_token": None, "pad_token": "<|endoftext|>",
                "chat_template": CHATML_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")
    return {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
