"""Train the bundled model's byte-level BPE tokenizer on the training split of the corpus.

Byte-level, so every string -- any language, any emoji a reader types -- encodes to some token
ids and decodes back to exactly the same bytes; nothing is ever an unknown token. The vocabulary
is small (4096 by default): the model is tiny, and with few distinct tokens the embedding table
stays a small part of it while common Shakespeare words ("thou", "lord", "ROMEO") are still one
token each.

``<|endoftext|>`` (id 0) is the only special token: the engine stops a sequence on it (EOS) and
the training script puts it between works. No BOS is added when encoding, so a prompt's ids
are the ids of its text alone, for the engine and for transformers alike.

Usage: python scripts/train_tokenizer.py --corpus _build/tiny-corpus --out _build/tiny-tokenizer
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS_TOKEN = "<|endoftext|>"


def read_split(corpus: Path, split: str) -> list[str]:
    """The works of one split, as written by prepare_corpus.py."""
    text = (corpus / f"{split}.txt").read_text(encoding="utf-8")
    return text.split(f"\n{EOS_TOKEN}\n")


def train(works: list[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    # add_prefix_space=False: "ROMEO:" at the start of a prompt and after a newline encode alike.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(works, trainer=trainer)
    return tokenizer


def check_round_trip(tokenizer: Tokenizer, works: list[str]) -> None:
    for work in works:
        if tokenizer.decode(tokenizer.encode(work).ids) != work:
            raise SystemExit("tokenizer does not round-trip the corpus; refusing to save it")


def tokenizer_config(max_length: int) -> dict:
    """A tokenizer_config.json so transformers' AutoTokenizer finds the EOS token too."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS_TOKEN,
        "bos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "add_bos_token": False,
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("_build/tiny-corpus"))
    parser.add_argument("--out", type=Path, default=Path("_build/tiny-tokenizer"))
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=2048)
    args = parser.parse_args(argv)

    train_works = read_split(args.corpus, "train")
    tokenizer = train(train_works, args.vocab_size)
    check_round_trip(tokenizer, train_works + read_split(args.corpus, "validation"))
    if tokenizer.token_to_id(EOS_TOKEN) != 0:
        raise SystemExit(f"{EOS_TOKEN} must have id 0")
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(args.out / "tokenizer.json"))
    config = tokenizer_config(args.max_length)
    (args.out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"vocabulary {tokenizer.get_vocab_size()} -> {args.out}")


if __name__ == "__main__":
    main()
