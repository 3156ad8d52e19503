"""Prompt guardrails: refuse terms the catalog owner has not licensed (e.g. artist names).

A term matches however it is written: case, accents, spacing and punctuation are ignored, so
"Daft Punk" also catches "daft-punk", "DAFTPUNK", "Dáft  Punk" and "d.a.f.t. punk". A match must
start and end on word boundaries of the prompt, so a short term never fires inside a longer word
("Abba" does not match "Abbado"). A term is allowed when the catalog being rendered from holds
a licence from that artist (its licence holder is the term, written any of those ways).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import GenerationError, Refusal

_WORD = re.compile(r"[^\W_]+")  # runs of letters/digits in any script


class BlockedPrompt(GenerationError):
    """The prompt names a blocked term; ``term`` is the configured term, as written there."""

    def __init__(self, term: str, field: str = "prompt") -> None:
        self.term = term
        self.field = field
        super().__init__(
            f"{field} mentions {term!r}, which is blocked for this catalog (no licence from "
            "them here); remove it or describe the sound instead",
            Refusal.BLOCKED_TERM,
        )


def words(text: str) -> list[str]:
    """Lower-case, accent-free words of ``text`` (compatibility forms folded too).

    >>> words("Dáft-PUNK, ＢＥＹＯＮＣÉ!")
    ['daft', 'punk', 'beyonce']
    """
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _WORD.findall(plain.casefold())


def squashed(text: str) -> str:
    """The term with everything but letters and digits removed: the form matching compares.

    >>> squashed("A$AP Rocky")
    'aaprocky'
    """
    return "".join(words(text))


def mentions(text: str, term: str) -> bool:
    """Whether ``text`` spells ``term`` across one or more whole words, however punctuated.

    >>> mentions("in the style of d.a.f.t. punk", "Daft Punk")
    True
    >>> mentions("a sound like Abbado conducting", "Abba")
    False
    """
    target = squashed(term)
    if not target:
        return False
    tokens = words(text)
    for first in range(len(tokens)):
        joined = ""
        for token in tokens[first:]:
            joined += token
            if joined == target:
                return True
            if len(joined) >= len(target) or not target.startswith(joined):
                break
    return False


@dataclass(frozen=True)
class Guardrails:
    blocked_terms: tuple[str, ...] = ()

    @classmethod
    def from_lists(cls, terms: Iterable[str], file: Path | None = None) -> Guardrails:
        """Terms from settings plus a file of one term a line (``#`` starts a comment)."""
        collected = [t.strip() for t in terms if t.strip()]
        if file is not None:
            for line in Path(file).read_text(encoding="utf-8").splitlines():
                term = line.split("#", 1)[0].strip()
                if term:
                    collected.append(term)
        return cls(tuple(dict.fromkeys(collected)))

    def blocked_in(self, text: str) -> list[str]:
        """Every configured term ``text`` mentions, in configuration order."""
        return [term for term in self.blocked_terms if mentions(text, term)]

    def check(self, text: str, licensed: Iterable[str] = (), field: str = "prompt") -> None:
        """Raise :class:`BlockedPrompt` for the first mentioned term nobody here licensed.

        ``licensed`` are the licence holders (or attributions) of the items the render may
        draw on; a term they spell out (e.g. "Mira Okafor" in "Mira Okafor Productions") is
        allowed.
        """
        names = list(licensed)
        for term in self.blocked_in(text):
            if not any(mentions(name, term) for name in names):
                raise BlockedPrompt(term, field)
