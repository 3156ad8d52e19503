"""What a sample's file name and folders say it is: "Drums/Kicks/BD_Hard_03.wav" is a kick.

Sample libraries name their files; a user searching "kick" or filtering ``--instrument bass``
expects those names to count even where no manifest says anything. :func:`name_label` reads the
words of a catalog-relative path against a vocabulary of the words and abbreviations sample
libraries use (``bd``, ``sd``, ``hh``, ``gtr``, ``pno``…). The file's own name wins over its
folders, the deepest folder over the ones above; within one name a drum-hit word wins over a
family word ("bass drum" is a kick, "808 kick" a kick, "808 bass" a bass).

Pure functions of the path: no audio is read. A manifest's ``instrument`` always overrides this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

# One-shot types of drum hits: word → type. Bigrams ("bass drum") are joined before lookup.
DRUM_WORDS: dict[str, str] = {
    **dict.fromkeys(("kick", "kicks", "kik", "kck", "bd", "bassdrum", "kickdrum"), "kick"),
    **dict.fromkeys(("snare", "snares", "snr", "sn", "sd", "snaredrum"), "snare"),
    **dict.fromkeys(("hihat", "hihats", "hat", "hats", "hh", "chh", "ohh"), "hi-hat"),
    **dict.fromkeys(("clap", "claps", "handclap", "handclaps"), "clap"),
    **dict.fromkeys(("tom", "toms", "tomtom", "floortom"), "tom"),
    **dict.fromkeys(("crash", "ride", "cymbal", "cymbals", "cym", "china", "splash"), "cymbal"),
    **dict.fromkeys(("rim", "rimshot", "sidestick", "xstick", "crossstick"), "rim"),
    **dict.fromkeys(
        ("perc", "percussion", "shaker", "tambourine", "tamb", "conga", "congas", "bongo",
         "bongos", "cowbell", "clave", "claves", "woodblock", "agogo", "cabasa", "guiro",
         "maracas", "triangle", "tabla", "djembe", "timbale", "timbales", "snap", "cajon"),
        "percussion",
    ),
}  # fmt: skip
# Families of pitched sounds: word → (family, the sound's name).
FAMILY_WORDS: dict[str, tuple[str, str]] = {
    **{w: ("bass", "bass") for w in ("bass", "basses", "sub", "subbass", "bassline", "bassguitar")},
    **{w: ("keys", "piano") for w in ("piano", "pno", "pianos", "grand")},
    **{w: ("keys", "electric piano") for w in ("rhodes", "wurli", "wurlitzer", "epiano", "ep")},
    **{w: ("keys", "keys") for w in ("keys", "keyboard", "harpsichord", "clavinet", "celeste")},
    **{w: ("organ", "organ") for w in ("organ", "organs", "hammond")},
    **{w: ("guitar", "guitar") for w in ("guitar", "guitars", "gtr", "guit", "strat", "tele")},
    **{w: ("strings", "strings") for w in ("strings", "string", "orchestra", "pizz", "pizzicato")},
    **{w: ("strings", "violin") for w in ("violin", "vln", "fiddle")},
    **{w: ("strings", "viola") for w in ("viola", "vla")},
    **{w: ("strings", "cello") for w in ("cello", "vc", "vlc")},
    **{w: ("strings", "contrabass") for w in ("contrabass", "doublebass")},
    **{w: ("brass", "brass") for w in ("brass", "horn", "horns")},
    **{w: ("brass", "trumpet") for w in ("trumpet", "tpt")},
    **{w: ("brass", "trombone") for w in ("trombone", "tbn")},
    **{w: ("brass", "tuba") for w in ("tuba",)},
    **{w: ("woodwind", "flute") for w in ("flute", "piccolo", "recorder", "panflute")},
    **{w: ("woodwind", "clarinet") for w in ("clarinet",)},
    **{w: ("woodwind", "oboe") for w in ("oboe", "bassoon")},
    **{w: ("woodwind", "saxophone") for w in ("sax", "saxophone")},
    **{w: ("woodwind", "woodwind") for w in ("woodwind", "woodwinds")},
    **{w: ("mallets", "mallets") for w in ("mallet", "mallets", "bell", "bells", "celesta")},
    **{w: ("mallets", "marimba") for w in ("marimba", "xylophone", "kalimba")},
    **{w: ("mallets", "vibraphone") for w in ("vibraphone", "vibes", "glockenspiel", "glock")},
    **{w: ("choir", "choir") for w in ("choir", "choirs", "vox", "vocal", "vocals", "voice")},
    **{w: ("choir", "choir") for w in ("voices", "aah", "ooh")},
    **{w: ("pad", "pad") for w in ("pad", "pads", "drone", "atmosphere", "atmos")},
    **{w: ("lead", "lead") for w in ("lead", "leads")},
    **{w: ("pluck", "pluck") for w in ("pluck", "plucks")},
    **{w: ("arp", "arp") for w in ("arp", "arps", "arpeggio")},
    **{w: ("fx", "sound effect") for w in ("fx", "sfx", "riser", "sweep", "impact", "whoosh",
                                            "uplifter", "downlifter", "foley")},
}  # fmt: skip
# Word pairs that mean one thing: joined before lookup.
BIGRAMS: dict[tuple[str, str], str] = {
    ("bass", "drum"): "bassdrum", ("kick", "drum"): "kickdrum", ("snare", "drum"): "snaredrum",
    ("hi", "hat"): "hihat", ("high", "hat"): "hihat", ("hand", "clap"): "handclap",
    ("side", "stick"): "sidestick", ("cross", "stick"): "crossstick", ("floor", "tom"): "floortom",
    ("e", "piano"): "epiano", ("electric", "piano"): "epiano", ("double", "bass"): "doublebass",
    ("sub", "bass"): "subbass", ("pan", "flute"): "panflute", ("bass", "guitar"): "bassguitar",
    ("mallet", "percussion"): "mallets", ("tuned", "percussion"): "mallets",
    ("wind", "instrument"): "woodwind", ("wind", "instruments"): "woodwinds",
    ("sound", "effect"): "sfx", ("sound", "effects"): "sfx",
}  # fmt: skip
# Genre names that hold instrument words: dropped before lookup ("drum and bass" is no bass).
GENRE_PHRASES: tuple[tuple[str, ...], ...] = (
    ("drum", "and", "bass"), ("drum", "n", "bass"), ("drum", "bass"), ("dnb",), ("dubstep",),
)  # fmt: skip
# A hit word beside one of these names a drum loop, not a hit ("kick loop", "snare groove").
LOOP_WORDS = frozenset({"loop", "loops", "groove", "grooves", "beat", "beats", "pattern", "break"})
# Closed/open/pedal cymbals are hi-hats ("drum_cymbal_closed").
HAT_WORDS = frozenset({"closed", "open", "pedal"})
# Words that say which kind of instrument, not a style: "orchestral strings" and "low-end bass"
# are still strings and bass, and rank by their prototype as "strings" and "bass" do.
SOUND_KIND_WORDS = ("orchestral", "acoustic", "electric", "real", "live", "solo", "section",
                    "ensemble", "low", "end")  # fmt: skip
# Words that ask for nothing beyond the sound itself ("a kick sample", "piano recording").
SOUND_ONLY_WORDS = frozenset(
    {"a", "an", "the", "some", "of", "with", "for", "my", "me", "i", "need", "want", "looking",
     "please", "just", "sound", "sounds", "sample", "samples", "recording", "recordings", "one",
     "shot", "oneshot", "hit", "hits", "note", "notes", "drum", "drums", "instrument", "single",
     "stem", "stems", "track", "part", "kit", "kits"}
) | LOOP_WORDS | frozenset(SOUND_KIND_WORDS)  # fmt: skip


@dataclass(frozen=True)
class NameLabel:
    """What a path says: the instrument family and, where stated, the sound."""

    family: str
    sound: str  # one-shot type for drum hits ("kick"), else the instrument ("violin", "bass")


def words(name: str) -> list[str]:
    """Lower-case words of one path part: split at non-letters, digits and camelCase.

    >>> words("BD_Hard03-KickDrum.wav")
    ['bd', 'hard', 'kick', 'drum', 'wav']
    """
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^a-z]+", spaced.lower()) if w]


def label_words(tokens: list[str]) -> NameLabel | None:
    """The label one name's words state, or None. Drum-hit words beat family words; of
    several family words the last one counts.

    >>> label_words(["drum", "and", "bass", "drums"])
    NameLabel(family='drums', sound='drums')
    >>> label_words(["drum", "loop", "with", "a", "kick"])
    NameLabel(family='drums', sound='drums')
    >>> label_words(["keyboard", "organ"])
    NameLabel(family='organ', sound='organ')
    >>> label_words(["tuned", "percussion"])
    NameLabel(family='mallets', sound='mallets')
    """
    joined = joined_bigrams(without_genres(tokens))
    hits = [DRUM_WORDS[w] for w in joined if w in DRUM_WORDS]
    if hits and LOOP_WORDS & set(joined):  # "house drum loop with a four-on-the-floor kick"
        return NameLabel("drums", "drums")
    if "cymbal" in hits and HAT_WORDS & set(joined):
        return NameLabel("drums", "hi-hat")
    if hits:
        return NameLabel("drums", hits[0])
    families = [FAMILY_WORDS[w] for w in joined if w in FAMILY_WORDS]
    if families:  # the last word is the head of an English compound: "lead guitar", "synth pad"
        family, sound = families[-1]
        return NameLabel(family, sound)
    if {"drum", "drums", "beat", "beats", "breakbeat", "break", "breaks"} & set(joined):
        return NameLabel("drums", "drums")
    return None


def joined_bigrams(tokens: list[str]) -> list[str]:
    """``tokens`` with each :data:`BIGRAMS` pair made one word.

    >>> joined_bigrams(["punchy", "kick", "drum"])
    ['punchy', 'kickdrum']
    """
    joined, i = [], 0
    while i < len(tokens):
        pair = tuple(tokens[i : i + 2])
        if pair in BIGRAMS:
            joined.append(BIGRAMS[pair])  # type: ignore[index]
            i += 2
        else:
            joined.append(tokens[i])
            i += 1
    return joined


def names_only_a_sound(text: str) -> bool:
    """Whether a prompt names a known sound and asks nothing more of it: every word is a sound
    word of this vocabulary or a word that asks nothing (:data:`SOUND_ONLY_WORDS`). A genre,
    mood or tempo word makes it False.

    >>> names_only_a_sound("a kick drum sample"), names_only_a_sound("techno drums")
    (True, False)
    >>> names_only_a_sound("looking for a snare"), names_only_a_sound("drum and bass drums")
    (True, False)
    >>> names_only_a_sound("orchestral strings"), names_only_a_sound("a drum kit sample")
    (True, True)
    >>> names_only_a_sound("sample")
    False
    """
    tokens = words(text)
    if label_words(tokens) is None or without_genres(tokens) != tokens:  # "drum and bass"
        return False
    known = DRUM_WORDS.keys() | FAMILY_WORDS.keys() | HAT_WORDS | SOUND_ONLY_WORDS
    return all(w in known for w in joined_bigrams(tokens))


def without_genres(tokens: list[str]) -> list[str]:
    """``tokens`` less every :data:`GENRE_PHRASES` phrase in them."""
    kept, i = [], 0
    while i < len(tokens):
        phrase = next((g for g in GENRE_PHRASES if tuple(tokens[i : i + len(g)]) == g), None)
        if phrase is None:
            kept.append(tokens[i])
            i += 1
        else:
            i += len(phrase)
    return kept


def name_label(relative_path: str) -> NameLabel | None:
    """The label a catalog-relative path states: the file name first, then its folders from
    the deepest up; None when no part says anything known.

    >>> name_label("Drums/Kicks/BD_Hard_03.wav")
    NameLabel(family='drums', sound='kick')
    >>> name_label("Strings/Cello Sustain C3.flac")
    NameLabel(family='strings', sound='cello')
    >>> name_label("Loops/808 Bass/take 2.wav")
    NameLabel(family='bass', sound='bass')
    >>> name_label("misc/untitled_01.wav") is None
    True
    """
    path = PurePosixPath(relative_path)
    for part in (path.stem, *reversed(path.parent.parts)):
        label = label_words(words(part))
        if label is not None:
            return label
    return None
