"""The words users type for General MIDI sounds: every program and percussion key, by name.

The demo loops' captions use about ten family words; users search for "violin", "organ",
"flute", "kick" or "hi-hat". This module names all 128 GM programs and the 47 GM percussion
keys (35–81) — their official names from ``pretty_midi`` plus the synonyms people use — and
sorts each into a family and, for percussion, a one-shot type (kick, snare, hi-hat, clap, tom,
cymbal, or another percussion sound).
"""

from __future__ import annotations

from pretty_midi.constants import DRUM_MAP, INSTRUMENT_MAP

FIRST_DRUM_NOTE = 35  # GM percussion keys run 35 (Acoustic Bass Drum) … 81 (Open Triangle)

# Family of each program, by GM's 8-program groups, with the few exceptions that sound like
# another family (timpani is a drum; banjo, sitar and koto are plucked; a fiddle is a violin).
_GROUP_FAMILIES: tuple[str, ...] = (
    "keys", "mallets", "organ", "guitar", "bass", "strings", "strings", "brass",
    "woodwind", "woodwind", "lead", "pad", "fx", "pluck", "percussion", "fx",
)  # fmt: skip
_PROGRAM_FAMILY_EXCEPTIONS: dict[int, str] = {
    47: "percussion",  # timpani
    52: "choir", 53: "choir", 54: "choir",
    55: "fx",  # orchestra hit
    109: "woodwind", 111: "woodwind",  # bagpipe, shanai
    110: "strings",  # fiddle
    114: "mallets",  # steel drums
}  # fmt: skip

# Words for each family beyond the loop families of captions.INSTRUMENT_SYNONYMS.
FAMILY_WORDS: dict[str, tuple[str, ...]] = {
    "drums": ("drums", "drum", "percussion", "drum kit"),
    "keys": ("keys", "piano", "keyboard"),
    "mallets": ("mallets", "mallet percussion", "tuned percussion", "bells"),
    "organ": ("organ", "organ sound", "keyboard organ"),
    "guitar": ("guitar", "guitar sound"),
    "bass": ("bass", "bass sound", "low-end bass"),
    "strings": ("strings", "string instrument", "orchestral strings"),
    "choir": ("choir", "vocal", "voices", "vocal choir"),
    "brass": ("brass", "horn", "brass instrument"),
    "woodwind": ("woodwind", "wind instrument", "woodwinds"),
    "lead": ("synth lead", "lead synth", "lead"),
    "pad": ("pad", "synth pad", "ambient pad"),
    "fx": ("sound effect", "fx", "sfx"),
    "pluck": ("pluck", "plucked instrument", "plucked string"),
    "percussion": ("percussion", "percussion instrument", "tuned drum"),
}

# Common names per program (the official GM name, cleaned, is always the first).
PROGRAM_SYNONYMS: dict[int, tuple[str, ...]] = {
    0: ("piano", "grand piano", "acoustic piano"), 1: ("bright piano", "piano"),
    2: ("electric grand", "CP-70 piano"), 3: ("honky-tonk piano", "saloon piano", "piano"),
    4: ("electric piano", "Rhodes", "e-piano"), 5: ("FM electric piano", "DX7 piano", "e-piano"),
    6: ("harpsichord", "baroque harpsichord"), 7: ("clavinet", "clav"),
    8: ("celesta", "celeste"), 9: ("glockenspiel", "glock", "bells"),
    10: ("music box",), 11: ("vibraphone", "vibes"), 12: ("marimba",),
    13: ("xylophone",), 14: ("tubular bells", "chimes"), 15: ("dulcimer", "hammered dulcimer"),
    16: ("organ", "Hammond organ", "drawbar organ"), 17: ("organ", "percussive organ"),
    18: ("rock organ", "organ"), 19: ("church organ", "pipe organ", "organ"),
    20: ("reed organ", "harmonium"), 21: ("accordion",), 22: ("harmonica", "blues harp"),
    23: ("bandoneon", "tango accordion"),
    24: ("nylon guitar", "classical guitar", "acoustic guitar"),
    25: ("acoustic guitar", "steel-string guitar"), 26: ("jazz guitar", "electric guitar"),
    27: ("clean electric guitar", "electric guitar"), 28: ("muted guitar", "palm-muted guitar"),
    29: ("overdrive guitar", "crunch guitar", "electric guitar"),
    30: ("distortion guitar", "distorted guitar", "metal guitar"), 31: ("guitar harmonics",),
    32: ("upright bass", "double bass", "acoustic bass"), 33: ("electric bass", "bass guitar"),
    34: ("picked bass", "bass guitar"), 35: ("fretless bass",), 36: ("slap bass",),
    37: ("slap bass", "funk bass"), 38: ("synth bass", "analog bass"),
    39: ("synth bass", "acid bass"),
    40: ("violin",), 41: ("viola",), 42: ("cello", "violoncello"),
    43: ("contrabass", "double bass"), 44: ("tremolo strings",), 45: ("pizzicato strings",),
    46: ("harp", "concert harp"), 47: ("timpani", "kettle drum"),
    48: ("string ensemble", "string section"), 49: ("slow strings", "string section"),
    50: ("synth strings",), 51: ("synth strings", "string machine"),
    52: ("choir", "choir aahs"), 53: ("voice oohs", "vocal ooh"),
    54: ("synth choir", "synth voice"),
    55: ("orchestra hit", "orchestral stab"),
    56: ("trumpet",), 57: ("trombone",), 58: ("tuba",),
    59: ("muted trumpet", "harmon mute trumpet"),
    60: ("French horn", "horn"), 61: ("brass section", "horns"), 62: ("synth brass",),
    63: ("synth brass", "brass stab"),
    64: ("soprano sax", "saxophone"), 65: ("alto sax", "saxophone", "sax"),
    66: ("tenor sax", "saxophone", "sax"), 67: ("baritone sax", "bari sax"),
    68: ("oboe",), 69: ("English horn", "cor anglais"), 70: ("bassoon",), 71: ("clarinet",),
    72: ("piccolo",), 73: ("flute",), 74: ("recorder",), 75: ("pan flute", "pan pipes"),
    76: ("blown bottle",), 77: ("shakuhachi", "bamboo flute"), 78: ("whistle",), 79: ("ocarina",),
    80: ("square lead", "square wave"), 81: ("saw lead", "sawtooth lead"), 82: ("calliope lead",),
    83: ("chiff lead",), 84: ("charang lead",), 85: ("voice lead",), 86: ("fifths lead",),
    87: ("bass and lead",),
    88: ("new age pad", "fantasia pad"), 89: ("warm pad",), 90: ("polysynth pad",),
    91: ("choir pad", "space voice"), 92: ("bowed pad", "bowed glass"), 93: ("metallic pad",),
    94: ("halo pad",), 95: ("sweep pad",),
    96: ("rain fx",), 97: ("soundtrack fx",), 98: ("crystal fx",), 99: ("atmosphere fx",),
    100: ("brightness fx",), 101: ("goblins fx",), 102: ("echoes fx",), 103: ("sci-fi fx",),
    104: ("sitar",), 105: ("banjo",), 106: ("shamisen",), 107: ("koto",), 108: ("kalimba",),
    109: ("bagpipe", "bagpipes"), 110: ("fiddle", "violin"), 111: ("shehnai", "shanai"),
    112: ("tinkle bell",), 113: ("agogo",), 114: ("steel drums", "steel pan"),
    115: ("woodblock", "wood block"), 116: ("taiko drum", "taiko"), 117: ("melodic tom",),
    118: ("synth drum",), 119: ("reverse cymbal",),
    120: ("guitar fret noise",), 121: ("breath noise",), 122: ("seashore", "waves"),
    123: ("bird tweet", "birdsong"), 124: ("telephone ring", "phone ring"),
    125: ("helicopter",), 126: ("applause",), 127: ("gunshot",),
}  # fmt: skip

# One-shot types of the percussion keys; keys not listed are "percussion" (congas, shakers…).
ONE_SHOT_TYPES: tuple[str, ...] = ("kick", "snare", "hi-hat", "clap", "tom", "cymbal")
_DRUM_TYPES: dict[int, str] = {
    35: "kick", 36: "kick", 37: "rim", 38: "snare", 39: "clap", 40: "snare",
    41: "tom", 42: "hi-hat", 43: "tom", 44: "hi-hat", 45: "tom", 46: "hi-hat", 47: "tom",
    48: "tom", 49: "cymbal", 50: "tom", 51: "cymbal", 52: "cymbal", 53: "cymbal",
    55: "cymbal", 57: "cymbal", 59: "cymbal",
}  # fmt: skip

# Words for each one-shot type: what a user types to find one.
TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "kick": ("kick", "kick drum", "bass drum", "kick hit", "kick sample"),
    "snare": ("snare", "snare drum", "snare hit", "snare sample"),
    "hi-hat": ("hi-hat", "hihat", "hi hat", "hat", "hat hit"),
    "clap": ("clap", "hand clap", "handclap", "clap hit"),
    "tom": ("tom", "tom drum", "tom-tom", "tom hit"),
    "cymbal": ("cymbal", "cymbal hit", "crash", "cymbal crash"),
    "rim": ("rimshot", "side stick", "rim click", "cross-stick"),
    "percussion": ("percussion", "percussion hit", "hand percussion"),
}

# Extra names per percussion key (the GM name, cleaned, comes first).
DRUM_SYNONYMS: dict[int, tuple[str, ...]] = {
    35: ("acoustic kick", "bass drum"), 36: ("kick drum", "bass drum"),
    37: ("side stick", "rimshot"), 38: ("acoustic snare", "snare drum"), 39: ("hand clap",),
    40: ("electric snare", "snare"), 41: ("low floor tom", "floor tom"), 42: ("closed hi-hat",),
    43: ("high floor tom", "floor tom"), 44: ("pedal hi-hat", "foot hi-hat"),
    45: ("low tom",), 46: ("open hi-hat",), 47: ("low-mid tom", "mid tom"),
    48: ("hi-mid tom", "mid tom"), 49: ("crash cymbal", "crash"), 50: ("high tom", "rack tom"),
    51: ("ride cymbal", "ride"), 52: ("china cymbal", "chinese cymbal"), 53: ("ride bell",),
    54: ("tambourine",), 55: ("splash cymbal", "splash"), 56: ("cowbell",),
    57: ("crash cymbal", "crash"), 58: ("vibraslap",), 59: ("ride cymbal", "ride"),
    60: ("high bongo", "bongo"), 61: ("low bongo", "bongo"), 62: ("muted conga", "conga"),
    63: ("open conga", "conga"), 64: ("low conga", "conga"), 65: ("high timbale", "timbale"),
    66: ("low timbale", "timbale"), 67: ("high agogo", "agogo"), 68: ("low agogo", "agogo"),
    69: ("cabasa", "shaker"), 70: ("maracas", "shaker"), 71: ("short whistle", "whistle"),
    72: ("long whistle", "whistle"), 73: ("short guiro", "guiro"), 74: ("long guiro", "guiro"),
    75: ("claves",), 76: ("high woodblock", "woodblock"), 77: ("low woodblock", "woodblock"),
    78: ("muted cuica", "cuica"), 79: ("open cuica", "cuica"), 80: ("muted triangle", "triangle"),
    81: ("open triangle", "triangle"),
}  # fmt: skip


def program_name(program: int) -> str:
    """The official GM name of a program, lower-cased: 0 → "acoustic grand piano".

    >>> program_name(40), program_name(81)
    ('violin', 'lead 2 (sawtooth)')
    """
    return INSTRUMENT_MAP[program].lower()


def program_family(program: int) -> str:
    """The family a GM program sounds like: 40 (violin) → "strings", 19 → "organ".

    >>> [program_family(p) for p in (0, 19, 40, 47, 56, 73, 105)]
    ['keys', 'organ', 'strings', 'percussion', 'brass', 'woodwind', 'pluck']
    """
    if not 0 <= program < 128:
        raise ValueError(f"GM programs are 0–127, got {program}")
    return _PROGRAM_FAMILY_EXCEPTIONS.get(program, _GROUP_FAMILIES[program // 8])


def program_words(program: int) -> tuple[str, ...]:
    """Every name of a program: the GM name first, then its common names (no repeats).

    >>> program_words(42)
    ('cello', 'violoncello')
    """
    return tuple(dict.fromkeys((program_name(program), *PROGRAM_SYNONYMS[program])))


def drum_name(note: int) -> str:
    """The official GM name of a percussion key, lower-cased: 42 → "closed hi hat".

    >>> drum_name(36)
    'bass drum 1'
    """
    if not FIRST_DRUM_NOTE <= note < FIRST_DRUM_NOTE + len(DRUM_MAP):
        raise ValueError(f"GM percussion keys are 35–81, got {note}")
    return DRUM_MAP[note - FIRST_DRUM_NOTE].lower()


def drum_type(note: int) -> str:
    """The one-shot type of a percussion key: kick, snare, hi-hat, clap, tom, cymbal, rim or
    percussion.

    >>> [drum_type(n) for n in (36, 38, 42, 39, 45, 49, 37, 63)]
    ['kick', 'snare', 'hi-hat', 'clap', 'tom', 'cymbal', 'rim', 'percussion']
    """
    drum_name(note)  # range check
    return _DRUM_TYPES.get(note, "percussion")


def drum_words(note: int) -> tuple[str, ...]:
    """Every name of a percussion key: the GM name, its common names, its type's words.

    >>> drum_words(42)[:3]
    ('closed hi hat', 'closed hi-hat', 'hi-hat')
    """
    kind = drum_type(note)
    extra = TYPE_WORDS[kind][:3] if kind != "percussion" else ()
    return tuple(dict.fromkeys((drum_name(note), *DRUM_SYNONYMS[note], *extra)))


def vocabulary() -> list[str]:
    """Every word list above as one text per entry (for training a tokenizer)."""
    texts = [" ".join(words) for words in FAMILY_WORDS.values()]
    texts += [" ".join(words) for words in TYPE_WORDS.values()]
    texts += [" ".join(program_words(p)) for p in range(128)]
    texts += [" ".join(drum_words(n)) for n in range(FIRST_DRUM_NOTE, FIRST_DRUM_NOTE + 47)]
    return texts
