"""Which parts a request asks for: roles from the prompt's words, an explicit list, or a style's
default arrangement.

A *role* is a part of a track that one seed fills — drums, bass, a harmonic part — and the
instrument families (the catalog's ``instrument`` values) that may fill it. Producers think in
stacks, so a request is seeded by one item per role rather than by the k items nearest the
whole prompt (which for "bass groove with tight drums" were four drum loops).

The vocabulary is the catalog's instrument families with the words people use for them
("beat"/"groove" → drums, "808"/"sub" → bass, "chords"/"harmony" → a harmonic part, …). A
genre whose name contains a role word ("drum and bass") names no role, and a role word right
after another role word describes it ("bass groove" is bass, "pad chords" a pad).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.guardrails import words


@dataclass(frozen=True)
class Role:
    """A part of the track: its name and the instrument families that may fill it."""

    name: str
    families: tuple[str, ...]

    def fits(self, family: str | None) -> bool:
        return family in self.families


# Instrument families (the demo catalog's vocabulary, shared/DESIGN.md) and their words.
FAMILY_WORDS: dict[str, tuple[str, ...]] = {
    "drums": (
        "drums", "drum", "beat", "beats", "groove", "grooves", "percussion", "kit", "break",
        "breaks", "kick", "kicks", "snare", "snares", "hats", "hihats", "toms",
    ),
    "bass": ("bass", "bassline", "basslines", "808", "808s", "sub", "subbass", "lowend"),
    "keys": (
        "keys", "piano", "pianos", "rhodes", "keyboard", "keyboards", "epiano", "clav", "organ",
    ),
    "pad": ("pad", "pads", "atmosphere", "drone"),
    "lead": ("lead", "leads", "melody", "melodies", "topline", "hook"),
    "arp": ("arp", "arps", "arpeggio", "arpeggios", "arpeggiated"),
    "pluck": ("pluck", "plucks", "plucked", "marimba", "kalimba", "harp", "pizzicato"),
    "strings": ("strings", "string", "violin", "violins", "cello", "cellos", "orchestra"),
    "guitar": ("guitar", "guitars"),
}  # fmt: skip
FAMILIES: tuple[str, ...] = tuple(FAMILY_WORDS)

# "Chords" without an instrument: any harmonic part will do.
HARMONIC = Role("harmonic", ("keys", "pad", "strings", "guitar"))
HARMONIC_WORDS: tuple[str, ...] = (
    "chords", "chord", "harmony", "harmonies", "harmonic", "progression",
)  # fmt: skip

# Words that describe the role word before them rather than naming a role of their own.
DESCRIBING_WORDS = frozenset({"groove", "grooves", "beat", "beats", "chords", "chord", "break"})

# Genres spelled with role words; they are removed before roles are read.
GENRE_PHRASES: tuple[tuple[str, ...], ...] = (
    ("drum", "and", "bass"), ("drum", "n", "bass"), ("drum", "bass"), ("drumnbass",),
    ("dnb",), ("d", "b"), ("breakbeat",), ("bass", "music"),
)  # fmt: skip

NEGATIONS = frozenset({"no", "without", "minus", "except"})

# What to seed when the request names no part: the style's usual stack.
DEFAULT_ARRANGEMENT: tuple[str, ...] = ("drums", "bass", "harmonic")
STYLE_ARRANGEMENTS: dict[str, tuple[str, ...]] = {
    "ambient": ("pad", "arp"),
    "cinematic": ("strings", "pad"),
    "trance": ("drums", "bass", "lead"),
    "lo-fi": ("drums", "bass", "keys"),
}

# The style words a prompt may use (a genre is only ever added to a prompt that implies it).
STYLE_WORDS: dict[str, tuple[str, ...]] = {
    "house": ("house",),
    "techno": ("techno",),
    "trance": ("trance",),
    "hip-hop": ("hip hop", "hiphop", "boom bap", "rap"),
    "lo-fi": ("lo fi", "lofi", "chillhop"),
    "trap": ("trap",),
    "drum-and-bass": ("drum and bass", "drum n bass", "drum bass", "dnb", "d b", "jungle"),
    "funk": ("funk", "funky", "disco"),
    "rock": ("rock",),
    "reggaeton": ("reggaeton", "dembow", "perreo"),
    "breakbeat": ("breakbeat", "breaks", "big beat"),
    "pop": ("pop", "synth pop"),
    "cinematic": ("cinematic", "film score", "trailer", "orchestral"),
    "ambient": ("ambient", "atmospheric"),
}


class UnknownRole(ValueError):
    """An explicit role that is no family, group or synonym; the message lists the choices."""


def role_named(name: str) -> Role:
    """The role an explicit name stands for: a family, "harmonic"/"chords", or a synonym.

    >>> role_named("808"), role_named("chords").name
    (Role(name='bass', families=('bass',)), 'harmonic')
    """
    token = "".join(words(name))
    if token in (HARMONIC.name, *HARMONIC_WORDS):
        return HARMONIC
    for family, synonyms in FAMILY_WORDS.items():
        if token == family or token in synonyms:
            return Role(family, (family,))
    choices = ", ".join((*FAMILIES, HARMONIC.name))
    raise UnknownRole(f"unknown role {name!r}: use one of {choices} (or a synonym)")


def styles_in(prompt: str) -> list[str]:
    """The styles a prompt implies, in vocabulary order.

    >>> styles_in("Dark DnB roller with a lofi pad")
    ['lo-fi', 'drum-and-bass']
    """
    text = f" {' '.join(words(prompt))} "
    return [s for s, spellings in STYLE_WORDS.items() if any(f" {w} " in text for w in spellings)]


def roles_in(prompt: str) -> tuple[list[Role], set[str]]:
    """The roles a prompt names, in the order it names them, and the families it excludes
    ("no drums", "without guitar").

    >>> named, excluded = roles_in("dark minor bass groove with tight drums")
    >>> [r.name for r in named], excluded
    (['bass', 'drums'], set())
    >>> [r.name for r in roles_in("DnB roller: 808 sub and pad chords, no drums")[0]]
    ['bass', 'pad']
    >>> [r.name for r in roles_in("a beat with warm chords")[0]]
    ['drums', 'harmonic']
    """
    tokens = _without_genres(words(prompt))
    named: list[Role] = []
    excluded: set[str] = set()
    previous: Role | None = None
    for n, token in enumerate(tokens):
        role = _token_role(token)
        if role is None:
            previous = None
            continue
        if previous is not None and token in DESCRIBING_WORDS:
            continue  # "bass groove", "pad chords": a word about the part just named
        previous = role
        if n > 0 and tokens[n - 1] in NEGATIONS:
            excluded.update(role.families)
        elif role not in named:
            named.append(role)
    return [r for r in named if not set(r.families) <= excluded], excluded


def request_roles(
    prompt: str,
    *,
    explicit: Sequence[str] = (),
    instrument: str | None = None,
    pinned_families: Iterable[str] = (),
    limit: int,
) -> tuple[list[Role], str]:
    """The roles to seed, and where they came from ("explicit", "prompt", "instrument",
    "style:<genre>" or "default").

    An explicit list wins, then an instrument filter (one role), then the roles the prompt
    names, else the style's arrangement. A harmonic group loses the families named on their
    own, so no family is asked for twice. Roles a pinned item already fills are dropped, then
    the list is cut to ``limit`` (the request's top-k).

    >>> [r.name for r in request_roles("tight drums, deep bass", limit=4)[0]]
    ['drums', 'bass']
    >>> roles, source = request_roles("dreamy ambient texture", limit=4)
    >>> [r.name for r in roles], source
    (['pad', 'arp'], 'style:ambient')
    >>> [r.name for r in request_roles("x", explicit=["drums", "808"], pinned_families=["drums"],
    ...                                limit=4)[0]]
    ['bass']
    """
    excluded: set[str] = set()
    if explicit:
        roles, source = [role_named(name) for name in explicit], "explicit"
    elif instrument:
        roles, source = [Role(instrument, (instrument,))], "instrument"
    else:
        roles, excluded = roles_in(prompt)
        source = "prompt"
        if not roles:
            styles = [s for s in styles_in(prompt) if s in STYLE_ARRANGEMENTS]
            source = f"style:{styles[0]}" if styles else "default"
            arrangement = STYLE_ARRANGEMENTS[styles[0]] if styles else DEFAULT_ARRANGEMENT
            roles = [role_named(name) for name in arrangement]
    roles = _distinct(roles, excluded)
    filled = set(pinned_families)
    roles = [r for r in roles if not filled & set(r.families)]
    return roles[: max(0, limit)], source


def _distinct(roles: Sequence[Role], excluded: set[str]) -> list[Role]:
    """Each family in one role only: single families keep theirs, groups keep the rest."""
    single = {r.families[0] for r in roles if len(r.families) == 1}
    out: list[Role] = []
    for role in roles:
        if len(role.families) > 1:
            kept = tuple(f for f in role.families if f not in single and f not in excluded)
            role = Role(role.name, kept)
        if role.families and role not in out:
            out.append(role)
    return out


def _token_role(token: str) -> Role | None:
    if token in HARMONIC_WORDS:
        return HARMONIC
    for family, synonyms in FAMILY_WORDS.items():
        if token in synonyms:
            return Role(family, (family,))
    return None


def _without_genres(tokens: list[str]) -> list[str]:
    """``tokens`` with genre phrases made of role words ("drum and bass") blanked out."""
    out = list(tokens)
    for phrase in GENRE_PHRASES:
        size = len(phrase)
        for start in range(len(out) - size + 1):
            if tuple(out[start : start + size]) == phrase:
                out[start : start + size] = [""] * size
    return out
