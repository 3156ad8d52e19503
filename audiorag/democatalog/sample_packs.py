"""Real recorded samples for CLAP training, from two Debian sample packs we never evaluate on.

A model trained only on SoundFont renders has heard real drums and instruments only through
those fonts. Debian ships two libraries of real (and drum-machine) samples whose file names say
what each is; this module labels them by name and writes them as a training catalog:

* ``sonic-pi-samples`` (3.2.2~repack-8): Sonic Pi's samples, mostly CC0 recordings from
  freesound.org, some CC-BY(-SA); each file's licence is in the package's copyright file.
* ``lmms-common`` (1.2.2+dfsg1-6): LMMS's sample library, GPL-2+.

They are fetched with ``apt-get download`` and unpacked with ``dpkg -x`` (nothing installed).
Loops, waveforms and anything a name does not identify are left out. Layout under ``out``::

    samples/<pack>/<family>/<name>.<ext>   the file as shipped (FLAC or Ogg)
    licences.jsonl                          path, licence, meta (family, sound, one_shot…)
    catalog.json                            packages, versions, counts

The held-out real set (``bench/real_audio/build.py``) takes ``hydrogen-drumkits`` and
``freepats``: disjoint packages. :func:`build_sample_pack_catalog` also drops any file whose
bytes equal a file of a folder given as ``exclude`` (the held-out set), and any file that does
not decode, and records both in ``catalog.json``.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audio.decode import UnusableFile, decode_audio, file_sha256
from audiorag.democatalog.debian import unpacked
from audiorag.democatalog.training_catalog import held_out_hashes, write_training_catalog
from index.names import NameLabel

PACKAGES: dict[str, str] = {
    "sonic-pi-samples": "usr/share/sonic-pi/samples",
    "lmms-common": "usr/share/lmms/samples",
}
LICENCES: dict[str, str] = {
    "sonic-pi-samples": "CC0 or CC-BY(-SA) per file (freesound.org sources), see Debian "
    "sonic-pi-samples' copyright file",
    "lmms-common": "GPL-2+ (Debian lmms-common's copyright file)",
}
AUDIO_SUFFIXES = (".flac", ".ogg", ".wav")

# File-name patterns → (family, sound), first match wins. A sound that is a one-shot type
# (kick, snare…) makes a drum hit; any other sound is an instrument name for the caption.
NAME_LABELS: tuple[tuple[str, str, str], ...] = (
    (r"^(bd_|kick|bassdrum|drum_heavy_kick|drum_bass_|elec_(hollow|soft)_kick)", "drums", "kick"),
    (r"^(sn_|snare(?!_rim)|drum_snare|elec_(filt_|hi_|lo_|mid_)?snare|nasty_snare)", "drums",
     "snare"),
    (r"^(hihat|drum_cymbal_(closed|open|pedal))", "drums", "hi-hat"),
    (r"^clap", "drums", "clap"),
    (r"^(tom|drum_tom|elec_fuzz_tom)", "drums", "tom"),
    (r"^(crash|ride|drum_cymbal_(hard|soft)|drum_splash|elec_cymbal)", "drums", "cymbal"),
    (r"^(rim|sidestick|snare_rim|nasty_rim)", "drums", "rim"),
    (r"^(shaker|clav\d|wood\d|drum_cowbell|tabla_|elec_triangle|elec_wood|perc_snap)", "drums",
     "percussion"),
    (r"^(bass_(?!drum)|bass\d|bass_acid|bass_hard|bass_punch|horror_bass|rave_bass|synth_acid"
     r"|techno_synth|matrix1000)", "bass", "synth bass"),
    (r"^bassslap", "bass", "slap bass"),
    (r"^cello", "strings", "cello"),
    (r"^violin", "strings", "violin"),
    (r"^(heaven_strings|orion_string|space_strings|strings\d)", "strings", "string ensemble"),
    (r"^church_organ", "organ", "church organ"),
    (r"^e_organ", "organ", "electric organ"),
    (r"^e_piano", "keys", "electric piano"),
    (r"^harpsichord", "keys", "harpsichord"),
    (r"^(piano|ambi_piano)", "keys", "piano"),
    (r"^flute", "woodwind", "flute"),
    (r"^(trumpet|latin_brass)", "brass", "trumpet"),
    (r"^steel_guitar", "guitar", "steel guitar"),
    (r"^(guit_|latin_guitar)", "guitar", "electric guitar"),
    (r"^(chorus|rave_choir|ambi_choir)", "choir", "choir"),
    (r"^bell_choir", "mallets", "bells"),
    (r"^(juno_pad|korg_poly6|nord_ambient|ambi_(drone|glass|haunted|soft_buzz))", "pad",
     "synth pad"),
    (r"^(zap|elec_(beep|blip|blup|bong|chime|flip|ping|plip|pop|tick|twang|twip)|glitch_|misc_"
     r"|vinyl_|perc_(door|impact|swash|swoosh|till)|ambi_(dark_woosh|swoosh|lunar|sauna)"
     r"|applause|explode|scratch)", "fx", "sound effect"),
)  # fmt: skip
# Folders that hold loops or test tones: a loop captioned as a hit would teach the wrong word.
SKIP_FOLDERS = frozenset({"bassloops", "beats", "shapes", "waveforms"})


def label_for(name: str) -> NameLabel | None:
    """The family and sound a sample's file name states, or None.

    >>> label_for("bd_808.flac")
    NameLabel(family='drums', sound='kick')
    >>> label_for("violin_pizzicato01.ogg")
    NameLabel(family='strings', sound='violin')
    >>> label_for("loop_amen.flac") is None
    True
    """
    stem = Path(name).stem.lower()
    for pattern, family, sound in NAME_LABELS:
        if re.search(pattern, stem):
            return NameLabel(family, sound)
    return None


def fetch(debs: Path) -> dict[str, Path]:
    """The samples folder of each of :data:`PACKAGES`, unpacked under ``debs``."""
    return {package: root / PACKAGES[package] for package, root in unpacked(debs, PACKAGES).items()}


def item_meta(label: NameLabel, package: str) -> dict[str, Any]:
    """Ground truth in the shape the one-shot catalog uses, so training captions it alike."""
    return {
        "kind": "stem", "instrument": label.family, "program": None,
        "is_drum": label.family == "drums", "genre": None, "bpm": None, "key": None,
        "bars": None, "tags": [label.sound], "one_shot": True, "sound": label.sound,
        "drum_note": None, "pitches": [], "source": package,
    }  # fmt: skip


def build_sample_pack_catalog(
    out: Path, *, debs: Path = Path("/tmp/audiorag-sample-debs"), exclude: Sequence[Path] = ()
) -> dict[str, Any]:
    """Write the labelled samples of :data:`PACKAGES` as a training catalog into ``out``;
    returns what ``catalog.json`` records."""
    out = Path(out)
    held_out = held_out_hashes(exclude)
    rows, unlabelled, duplicates, undecodable = [], 0, 0, []
    for package, root in fetch(Path(debs)).items():
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES or path.parent.name in SKIP_FOLDERS:
                continue
            label = label_for(path.name)
            if label is None:
                unlabelled += 1
                continue
            if file_sha256(path) in held_out:
                duplicates += 1
                continue
            try:  # lmms-common ships a few files whose headers libsndfile rejects
                decode_audio(path)
            except UnusableFile as err:
                undecodable.append(f"{package}: {path.name}: {err}")
                continue
            target = f"samples/{package}/{label.family}/{path.name}"
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / target)
            licence = {
                "id": f"SP-{len(rows):04d}", "holder": package,
                "allowed_uses": ["search", "generation-seed"], "attribution": LICENCES[package],
            }  # fmt: skip
            rows.append({"path": target, "licence": licence, "meta": item_meta(label, package)})
    description = {
        "generator": "audiorag.democatalog.sample_packs",
        "packages": {package: LICENCES[package] for package in PACKAGES},
        "items": len(rows),
        "unlabelled_skipped": unlabelled,
        "held_out_duplicates_skipped": duplicates,
        "undecodable_skipped": undecodable,
        "counts": dict(sorted(Counter(r["meta"]["instrument"] for r in rows).items())),
        "sounds": dict(sorted(Counter(r["meta"]["sound"] for r in rows).items())),
    }
    return write_training_catalog(out, rows, description)
