"""Natural-language captions for demo items, written from their ground-truth metadata.

A text encoder trained on these should learn language, not one template, so each caption draws
a sentence template, a synonym for the instrument (or a name for its exact GM sound), one for
the style, a wording for the moods, and optionally a tempo and a key, each in one of several
formats ("124 BPM", "124bpm", "at 124 beats per minute"; "in A minor", "Am").

The vocabularies are public so a CLAP-training loop can draw fresh captions every epoch:
``caption_for(meta, rng)`` with a new ``rng`` gives a new wording of the same facts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# "a"/"A" followed by a word that starts with a vowel sound ("eu…" and "uni…" start with a
# consonant sound; "8…" is read "eight").
_ARTICLE = re.compile(r"\b([Aa]) ((?!eu|uni)[aeiouAEIOU8]\w*)")

INSTRUMENT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "drums": (
        "drums", "drum groove", "beat", "drum pattern", "percussion", "drum break", "kit groove",
    ),
    "bass": ("bass", "bassline", "bass line", "low-end bass", "bass groove", "bass riff"),
    "keys": ("keys", "piano", "keyboard chords", "piano chords", "keyboard part", "keyboard"),
    "pad": ("pad", "synth pad", "ambient pad", "pad chords", "atmospheric pad", "pad texture"),
    "lead": ("lead", "synth lead", "lead melody", "lead line", "melodic lead", "topline lead"),
    "arp": ("arp", "arpeggio", "arpeggiated synth", "synth arp", "arpeggiated line", "arp line"),
    "pluck": ("pluck", "plucked riff", "plucks", "pluck melody", "plucky riff", "plucked motif"),
    "strings": (
        "strings", "string section", "string ensemble", "orchestral strings", "bowed strings",
    ),
    "guitar": ("guitar", "guitar riff", "guitar part", "guitar chords", "guitar pattern"),
}  # fmt: skip

# Names for the exact General MIDI sound of a part, per family (the same program can serve two
# families: 90 is a pad and an arp). Each name says the family too, so a caption that uses one
# still says what kind of part it is.
PROGRAM_DESCRIPTIONS: dict[str, dict[int, tuple[str, ...]]] = {
    "keys": {
        0: ("acoustic piano", "grand piano"),
        1: ("bright piano", "bright acoustic piano"),
        2: ("electric grand piano",),
        4: ("electric piano", "Rhodes-style electric piano", "e-piano keys"),
        5: ("FM electric piano", "DX-style electric piano", "e-piano keys"),
        7: ("clavinet keys", "funky clav keys"),
    },
    "guitar": {
        24: ("nylon-string guitar", "classical guitar"),
        25: ("steel-string acoustic guitar", "acoustic guitar"),
        26: ("jazz guitar", "hollow-body jazz guitar"),
        27: ("clean electric guitar", "clean guitar"),
        28: ("muted electric guitar", "palm-muted guitar"),
        29: ("overdriven guitar", "crunchy overdrive guitar"),
        30: ("distorted guitar", "distortion guitar"),
    },
    "bass": {
        32: ("upright bass", "acoustic bass"),
        33: ("fingered electric bass", "electric bass"),
        34: ("picked electric bass", "picked bass"),
        35: ("fretless bass",),
        36: ("slap bass",),
        37: ("slap bass", "popping slap bass"),
        38: ("synth bass", "analog synth bass"),
        39: ("synth bass", "resonant synth bass"),
    },
    "strings": {
        44: ("tremolo strings",),
        48: ("string ensemble", "lush strings"),
        49: ("slow strings", "legato strings"),
        50: ("synth strings",),
        51: ("synth strings", "analog synth strings"),
    },
    "pluck": {
        12: ("marimba plucks",),
        45: ("pizzicato string plucks", "pizzicato plucks"),
        46: ("harp plucks", "plucked harp"),
        107: ("koto plucks",),
        108: ("kalimba plucks",),
    },
    "lead": {
        80: ("square-wave lead", "square lead"),
        81: ("sawtooth lead", "saw lead"),
        82: ("calliope lead", "whistly calliope lead"),
        83: ("chiff lead",),
        84: ("charang lead",),
        85: ("voice-like synth lead",),
        86: ("fifths saw lead", "detuned fifths lead"),
        87: ("bass-and-lead synth lead",),
    },
    "arp": {
        8: ("celesta arpeggio",),
        10: ("music-box arpeggio",),
        11: ("vibraphone arpeggio",),
        80: ("square-wave arp",),
        81: ("saw arp", "sawtooth arpeggio"),
        86: ("fifths saw arp",),
        87: ("bass-and-lead synth arp",),
        90: ("polysynth arp",),
        98: ("crystal synth arp",),
    },
    "pad": {
        88: ("fantasia pad", "new-age pad"),
        89: ("warm pad", "warm analog pad"),
        90: ("polysynth pad",),
        91: ("choir-like space pad",),
        92: ("bowed glass pad",),
        93: ("metallic pad",),
        94: ("halo pad",),
        95: ("sweep pad", "filter-sweep pad"),
    },
}

STYLE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "house": ("house", "deep house", "club house", "four-on-the-floor house"),
    "techno": ("techno", "warehouse techno", "peak-time techno", "minimal techno"),
    "trance": ("trance", "uplifting trance", "progressive trance"),
    "hip-hop": ("hip-hop", "hip hop", "boom bap", "old-school hip-hop", "rap"),
    "lo-fi": ("lo-fi", "lofi", "lo-fi hip hop", "chillhop"),
    "trap": ("trap", "808 trap", "modern trap"),
    "drum-and-bass": (
        "drum & bass",
        "drum and bass",
        "DnB",
        "d&b",
        "jungle-flavoured drum and bass",
    ),
    "funk": ("funk", "funky", "classic funk", "disco-funk"),
    "rock": ("rock", "indie rock", "classic rock", "garage rock"),
    "reggaeton": ("reggaeton", "dembow", "latin urban", "perreo"),
    "breakbeat": ("breakbeat", "breaks", "big beat", "nu-skool breaks"),
    "pop": ("pop", "modern pop", "synth-pop", "radio pop"),
    "cinematic": ("cinematic", "film score", "trailer", "orchestral cinematic"),
    "ambient": ("ambient", "atmospheric", "downtempo ambient", "chill ambient"),
}

MOOD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "dark": ("dark", "moody", "shadowy"),
    "bright": ("bright", "sunny", "shimmering"),
    "uplifting": ("uplifting", "euphoric", "hopeful"),
    "melancholic": ("melancholic", "sad", "wistful"),
    "aggressive": ("aggressive", "hard-hitting", "punchy"),
    "chill": ("chill", "laid-back", "relaxed"),
    "dreamy": ("dreamy", "floating", "hazy"),
    "energetic": ("energetic", "high-energy", "lively"),
    "groovy": ("groovy", "bouncy", "grooving"),
    "tense": ("tense", "suspenseful", "ominous"),
    "warm": ("warm", "mellow", "cosy"),
    "gritty": ("gritty", "dirty", "raw"),
    "hypnotic": ("hypnotic", "repetitive", "trance-inducing"),
    "driving": ("driving", "propulsive", "relentless"),
    "nostalgic": ("nostalgic", "vintage", "retro"),
    "playful": ("playful", "cheeky", "fun"),
}

# Sentence shapes. Fields: {style}, {instrument}, {moods}, {tempo}, {key}, {bars}, each already
# worded; templates that use {tempo} or {key} are only drawn when that detail is mentioned.
CAPTION_TEMPLATES: tuple[str, ...] = (
    "{moods} {style} {instrument}{tempo_comma}{key_comma}",
    "{moods_cap} {style} {instrument}{tempo_at}{key_in}.",
    "{style_cap} {instrument} loop, {moods}{tempo_comma}{key_comma}",
    "{bars}-bar {style} {instrument}, {moods}{tempo_comma}{key_comma}",
    "{instrument_cap} for {style} tracks: {moods}{tempo_comma}{key_comma}",
    "{moods_cap} {instrument} with a {style} feel{tempo_at}{key_in}",
    "Loop of {moods} {instrument}, {style} style{tempo_comma}{key_comma}",
    "{style_cap} {instrument}{tempo_paren}{key_dash}: {moods}",
    "{instrument_cap}{key_in}{tempo_at}, {moods} {style} vibe",
    "{moods_cap} {bars}-bar {instrument} loop for {style}{tempo_comma}{key_comma}",
    "{style_cap}-style {instrument}, {moods}{tempo_comma}{key_comma}",
    "{style_cap} {instrument} with a {moods} character{tempo_comma}{key_comma}",
)


def tempo_phrase(bpm: float, rng: np.random.Generator) -> str:
    """The tempo in one of several common spellings.

    Examples
    --------
    >>> tempo_phrase(124.0, np.random.default_rng(0)) in {"124 BPM", "124bpm", "124 bpm",
    ...     "124 beats per minute"}
    True
    """
    value = f"{bpm:g}"
    return draw((f"{value} BPM", f"{value}bpm", f"{value} bpm", f"{value} beats per minute"), rng)


def key_phrase(key: str, rng: np.random.Generator) -> str:
    """The key in one of several spellings: "A minor", "Am", "A min", "A sharp minor".

    Examples
    --------
    >>> sorted({key_phrase("F# major", np.random.default_rng(i)) for i in range(200)})
    ['F sharp major', 'F#', 'F# maj', 'F# major']
    """
    tonic, mode = key.split()
    short = tonic + ("m" if mode == "minor" else "")
    return draw(
        (key, key, short, f"{tonic} {mode[:3]}", f"{tonic.replace('#', ' sharp')} {mode}"), rng
    )


def tempo_connectors(tempo: str, rng: np.random.Generator) -> dict[str, str]:
    """Template fields that attach a tempo phrase (or nothing, when it is empty)."""
    if not tempo:
        return {"tempo_comma": "", "tempo_at": "", "tempo_paren": ""}
    return {
        "tempo_comma": draw((f", {tempo}", f", {tempo}", f", tempo {tempo}"), rng),
        "tempo_at": draw((f" at {tempo}", f" at {tempo}", f" at a tempo of {tempo}"), rng),
        "tempo_paren": f" ({tempo})",
    }


def key_connectors(key: str, rng: np.random.Generator) -> dict[str, str]:
    """Template fields that attach a key phrase (or nothing, when it is empty)."""
    if not key:
        return {"key_comma": "", "key_in": "", "key_dash": ""}
    return {
        "key_comma": draw((f", {key}", f", in {key}", f", key of {key}", f", {key} key"), rng),
        "key_in": draw((f" in {key}", f" in {key}", f" in the key of {key}"), rng),
        "key_dash": f" – {key}",
    }


def mood_phrase(tags: Sequence[str], rng: np.random.Generator) -> str:
    """The mood tags as words: "dark", "dark and gritty", "dark, tense and gritty"."""
    words = [draw(MOOD_SYNONYMS.get(tag, (tag,)), rng) for tag in tags]
    if len(words) <= 1:
        return "".join(words)
    joiner = " and " if rng.random() < 0.7 else " & "
    return ", ".join(words[:-1]) + joiner + words[-1]


def instrument_phrase(instrument: str, program: int | None, rng: np.random.Generator) -> str:
    """A name for the part: a family synonym, or now and then the exact GM sound's name."""
    specific = (
        PROGRAM_DESCRIPTIONS.get(instrument, {}).get(program) if program is not None else None
    )
    if specific and rng.random() < 0.4:
        return draw(specific, rng)
    return draw(INSTRUMENT_SYNONYMS[instrument], rng)


def draw(options: Sequence[str], rng: np.random.Generator) -> str:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def capitalize(text: str) -> str:
    """Upper-case the first character only ("lo-fi" -> "Lo-fi", "DnB" stays "DnB")."""
    return text[:1].upper() + text[1:]


def caption_for(meta: Mapping[str, Any], rng: np.random.Generator) -> str:
    """A natural caption for an item from its metadata, worded at random.

    ``meta`` needs ``instrument``, ``genre``, ``tags`` and ``bars``, and uses ``bpm``, ``key``
    and ``program`` when present. Tempo is mentioned about 70 % of the time, key about 70 %
    of the time when the item has one.

    Examples
    --------
    >>> meta = {"instrument": "bass", "program": 38, "genre": "house", "bpm": 124.0,
    ...         "key": "A minor", "bars": 4, "tags": ["groovy", "dark"]}
    >>> caption = caption_for(meta, np.random.default_rng(3))
    >>> "bass" in caption.lower()
    True
    """
    tempo = tempo_phrase(meta["bpm"], rng) if meta.get("bpm") and rng.random() < 0.7 else ""
    key = key_phrase(meta["key"], rng) if meta.get("key") and rng.random() < 0.7 else ""
    style = draw(STYLE_SYNONYMS.get(meta["genre"], (meta["genre"],)), rng)
    instrument = instrument_phrase(meta["instrument"], meta.get("program"), rng)
    moods = mood_phrase(meta["tags"], rng)
    fields = {
        "style": style,
        "style_cap": capitalize(style),
        "instrument": instrument,
        "instrument_cap": capitalize(instrument),
        "moods": moods,
        "moods_cap": capitalize(moods),
        "bars": meta["bars"],
        **tempo_connectors(tempo, rng),
        **key_connectors(key, rng),
    }
    caption = draw(CAPTION_TEMPLATES, rng).format(**fields)
    return capitalize(fix_articles(" ".join(caption.split())))


def fix_articles(text: str) -> str:
    """Use "an" before vowel sounds: "A energetic beat" -> "An energetic beat".

    Examples
    --------
    >>> fix_articles("A uplifting pad, a euphoric lead, a 808 kick")
    'An uplifting pad, a euphoric lead, an 808 kick'
    """
    return _ARTICLE.sub(lambda m: m.group(1) + "n " + m.group(2), text)
