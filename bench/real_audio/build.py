"""Assemble the held-out REAL-audio retrieval set from two Debian packages we never train on.

    python bench/real_audio/build.py --out data/real-heldout [--debs DIR]

Sources (downloaded with ``apt-get download`` into ``--debs`` unless already there, unpacked
with ``dpkg -x``; nothing is installed):

* ``hydrogen-drumkits`` (2017.09.19~dfsg-1): 14 recorded drum kits (GPL-2 / GPL-2+ / CC0 per
  kit, see the package's copyright file). From each kit, every instrument whose name says what
  it is (kick, snare, hi-hat, clap, tom, cymbal, rim, other percussion), its loudest layer, at
  most ``--per-type`` per kit and type; and two 2-bar drum loops per kit sequenced from its own
  kick, snare and hi-hat samples (a real recorded kit, as the issue's loops were).
* ``freepats`` (20060219-4, GPL-2+ with a composition exception): real sampled instruments as
  GUS patches. From every melodic patch, up to three of its samples (low, middle, high: the
  PCM after the documented header) played as a sampler plays a held note (attack, sustain
  loop repeated to 1.5 s, 0.3 s release: ``played_note``), ≤ 3 s; from the percussion patches,
  every GM drum sound.

Writes to ``--out``: the audio (``hydrogen/…``, ``loops/…``, ``freepats/…``), ``labels.csv``
(path, family, one_shot_type, source), and ``licences.jsonl`` (each file's real licence, no
metadata: the indexer sees the folder as a user's library). Deterministic: same packages, same
files.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from audio.signal import resample
from audiorag.democatalog.debian import unpacked
from audiorag.democatalog.gm_names import drum_type, program_family

PACKAGES = ("hydrogen-drumkits", "freepats")
SR = 44100
MAX_SECONDS = 3.0
NOTE_HOLD = 1.5  # seconds a looped note is held before its release
NOTE_RELEASE = 0.3

# Instrument-name words → one-shot type, in priority order ("Snare Rimshot" is a snare).
TYPE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("clap", r"clap"),
    ("kick", r"kick|bass ?drum|\bbd\b|cajon thump"),
    ("hi-hat", r"h(i|igh)[- ]?hat|\bhh\b|\bhat\b|hat "),
    ("snare", r"snare|redo"),
    ("tom", r"\btom|floor"),
    ("cymbal", r"crash|ride|cymbal|china|splash"),
    ("rim", r"stick|rim"),
    ("percussion", r"cowbell|conga|bongo|tambourine|agogo|clave|woodblock|maraca|djembe|cajon"
     r"|snap|bell|shaker|drum \d|sangban|dununba|kenkeni|waterglass"),
)  # fmt: skip

KIT_LICENCES: dict[str, str] = {
    "ElectricEmpireKit": "GPL-2+", "HardElectro1": "GPL-2+", "VariBreaks": "GPL-2+",
    "Millo-Drums_v.1": "GPL-2", "Millo_MultiLayered2": "GPL-2", "Millo_MultiLayered3": "GPL-2",
    "ColomboAcousticDrumkit": "GPL-2+ with composition exception",
}  # fmt: skip


def fetch(debs: Path) -> dict[str, Path]:
    """Each package unpacked under ``debs/x_<package>``; downloads the .deb if absent."""
    return unpacked(debs, PACKAGES)


def one_shot_type(name: str) -> str | None:
    """The type an instrument name states, or None (numbers, sample names, blanks)."""
    low = name.lower()
    if not re.search(r"[a-z]{3}", low) or low.startswith("sample:"):
        return None
    for kind, pattern in TYPE_PATTERNS:
        if re.search(pattern, low):
            return kind
    return None


def kit_sounds(kit: Path) -> list[tuple[str, str, Path]]:
    """(instrument name, type, loudest layer file) of each nameable instrument of a kit."""
    root = ET.parse(kit / "drumkit.xml").getroot()
    ns = {"h": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
    prefix = "h:" if ns else ""
    sounds = []
    for instrument in root.iter(f"{{{ns['h']}}}instrument" if ns else "instrument"):
        name = (instrument.findtext(f"{prefix}name", namespaces=ns) or "").strip()
        kind = one_shot_type(name)
        layers = instrument.findall(f"{prefix}layer", namespaces=ns)
        if kind is None or not layers:
            continue
        loudest = max(layers, key=lambda layer: float(layer.findtext(f"{prefix}max", "1", ns)))
        file = kit / (loudest.findtext(f"{prefix}filename", namespaces=ns) or "")
        if file.is_file():
            sounds.append((name, kind, file))
    return sounds


def read_mono(path: Path) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), sr, SR)


def drum_loop(sounds: dict[str, np.ndarray], bpm: float, variant: int) -> np.ndarray:
    """Two bars of a basic groove from a kit's own kick, snare and hi-hat samples."""
    step = 60.0 / bpm / 4  # sixteenth notes
    length = round(2 * 16 * step * SR)
    out = np.zeros(length + SR * 2, np.float32)
    kicks = (0, 8, 10) if variant else (0, 6, 8)
    for bar in range(2):
        for s in range(16):
            at = round((bar * 16 + s) * step * SR)
            if s in kicks:
                hit = sounds["kick"]
            elif s in (4, 12):
                hit = sounds["snare"]
            else:
                hit = None
            if s % 2 == 0:
                hat = sounds["hi-hat"] * (0.6 if s % 4 else 0.8)
                out[at : at + hat.size] += hat[: out.size - at]
            if hit is not None:
                out[at : at + hit.size] += hit[: out.size - at]
    loop = out[:length]
    loop[: SR * 2] += out[length:][: min(SR * 2, length)]  # ring wraps to the start
    return loop / (np.abs(loop).max() or 1.0) * 0.89


def hydrogen_items(root: Path, out: Path, per_type: int) -> list[dict[str, str]]:
    kits = sorted((root / "usr/share/hydrogen/data/drumkits").iterdir())
    rows = []
    for k, kit in enumerate(kits):
        licence = KIT_LICENCES.get(kit.name, "GPL (see the package's copyright file)")
        xml_licence = ET.parse(kit / "drumkit.xml").getroot()
        for element in xml_licence.iter():
            if element.tag.endswith("license") and (element.text or "").strip():
                licence = f"{licence}; drumkit.xml: {element.text.strip()[:80]}"
        taken: dict[str, int] = {}
        first: dict[str, np.ndarray] = {}
        for name, kind, file in kit_sounds(kit):
            if taken.get(kind, 0) >= per_type:
                continue
            taken[kind] = taken.get(kind, 0) + 1
            slug = re.sub(r"[^a-z0-9]+", "-", f"{kit.name}-{name}".lower()).strip("-")
            target = f"hydrogen/{slug}{file.suffix.lower()}"
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, out / target)
            rows.append(row(target, "drums", kind, f"hydrogen-drumkits/{kit.name}", licence))
            if kind in ("kick", "snare", "hi-hat") and kind not in first:
                first[kind] = read_mono(file)
        if len(first) == 3:
            for variant, bpm in enumerate((90 + 5 * k, 118 + 2 * k)):
                target = f"loops/{re.sub(r'[^a-z0-9]+', '-', kit.name.lower())}-{bpm}bpm.wav"
                (out / target).parent.mkdir(parents=True, exist_ok=True)
                loop = drum_loop(first, bpm, variant)
                sf.write(out / target, np.stack([loop, loop], 1), SR, subtype="PCM_16")
                source = f"hydrogen-drumkits/{kit.name} (sequenced)"
                rows.append(row(target, "drums", "", source, licence))
    return rows


class GusSample(NamedTuple):
    """One sample of a GUS patch: its PCM, rate and sustain loop (frames; None if unlooped)."""

    pcm: np.ndarray
    rate: int
    loop: tuple[int, int] | None = None
    pingpong: bool = False


def gus_samples(path: Path) -> list[GusSample]:
    """The samples of a GUS patch (.pat): a 129-byte file header, a 63-byte instrument header,
    a 47-byte layer header, then per sample a 96-byte header (data size at +8, loop start and
    end in bytes at +12 and +16, sample rate at +20, modes at +55: bit 0 16-bit, bit 1
    unsigned, bit 2 looped, bit 3 ping-pong) and its data."""
    data = path.read_bytes()
    if not data.startswith(b"GF1PATCH"):
        raise ValueError(f"{path}: not a GUS patch")
    count = data[129 + 63 + 6]  # samples in the first layer
    offset, samples = 129 + 63 + 47, []
    for _ in range(count):
        size, loop_start, loop_end = struct.unpack_from("<III", data, offset + 8)
        rate = struct.unpack_from("<H", data, offset + 20)[0]
        modes = data[offset + 55]
        raw = data[offset + 96 : offset + 96 + size]
        width = 2 if modes & 1 else 1
        if width == 2:
            pcm = np.frombuffer(raw[: len(raw) // 2 * 2], "<u2" if modes & 2 else "<i2")
            pcm = (pcm.astype(np.float32) - (32768 if modes & 2 else 0)) / 32768
        else:
            pcm = np.frombuffer(raw, np.uint8 if modes & 2 else np.int8).astype(np.float32)
            pcm = (pcm - (128 if modes & 2 else 0)) / 128
        start, end = loop_start // width, min(loop_end // width, pcm.size)
        loop = (start, end) if modes & 4 and end - start >= 16 else None
        samples.append(GusSample(pcm, rate, loop, bool(modes & 8)))
        offset += 96 + size
    return samples


def played_note(sample: GusSample, hold: float = NOTE_HOLD) -> np.ndarray:
    """The sample as a sampler plays a held note: the attack, then the sustain loop repeated
    (forward, or back and forth for ping-pong loops) until ``hold`` seconds, then a release
    fade. A looped GUS sample is only attack plus one loop cycle (a 30 ms flute), which no one's
    sample library holds; unlooped samples (drums, some plucks) are played as they are."""
    if sample.loop is None:
        return sample.pcm.copy()
    start, end = sample.loop
    cycle = sample.pcm[start:end]
    if sample.pingpong:
        cycle = np.concatenate([cycle, cycle[::-1]])
    total = max(end, round((hold + NOTE_RELEASE) * sample.rate))
    repeats = -(-(total - end) // cycle.size)
    note = np.concatenate([sample.pcm[:end], np.tile(cycle, repeats)])[:total].copy()
    release = min(note.size, round(NOTE_RELEASE * sample.rate))
    note[-release:] *= np.linspace(1, 0, release, dtype=np.float32) ** 2
    return note


def freepats_items(root: Path, out: Path) -> list[dict[str, str]]:
    licence = "GPL-2+ with composition exception (FreePats, Debian freepats)"
    rows = []
    base = root / "usr/share/midi/freepats"
    for patch in sorted((base / "Tone_000").glob("*.pat")):
        program = int(patch.name[:3])
        samples = gus_samples(patch)
        picks = sorted({len(samples) * q // 4 for q in (1, 2, 3)})  # low, middle, high notes
        for n in picks:
            pcm, rate = played_note(samples[n]), samples[n].rate
            target = f"freepats/{patch.stem.lower()}-{n}.wav"
            family, source = program_family(program), f"freepats/{patch.name}"
            rows += write_note(out, target, pcm, rate, family, "", source, licence)
    for patch in sorted((base / "Drum_000").glob("*.pat")):
        note = int(patch.name[:3])
        if not 35 <= note <= 81:
            continue
        hit = gus_samples(patch)[0]  # a drum plays once, its loop unused (as TiMidity++ does)
        pcm, rate = hit.pcm, hit.rate
        rows += write_note(out, f"freepats/drum-{patch.stem.lower()}.wav", pcm, rate, "drums",
                           drum_type(note), f"freepats/{patch.name}", licence)  # fmt: skip
    return rows


def write_note(out, target, pcm, rate, family, kind, source, licence) -> list[dict[str, str]]:
    audio = resample(pcm, rate, SR)[: round(MAX_SECONDS * SR)]
    if audio.size < SR // 50 or np.abs(audio).max() < 1e-3:
        return []
    fade = min(audio.size, SR // 100)
    audio[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    (out / target).parent.mkdir(parents=True, exist_ok=True)
    sf.write(out / target, audio / np.abs(audio).max() * 0.89, SR, subtype="PCM_16")
    return [row(target, family, kind, source, licence)]


def row(path: str, family: str, kind: str, source: str, licence: str) -> dict[str, str]:
    return {"path": path, "family": family, "one_shot_type": kind, "source": source,
            "licence": licence}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--debs", type=Path, default=Path("/tmp/audiorag-real-debs"))
    parser.add_argument("--per-type", type=int, default=3, help="one-shots per kit and type")
    args = parser.parse_args()
    roots = fetch(args.debs)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    rows = hydrogen_items(roots["hydrogen-drumkits"], args.out, args.per_type)
    rows += freepats_items(roots["freepats"], args.out)
    with (args.out / "labels.csv").open("w", newline="", encoding="utf-8") as labels:
        writer = csv.DictWriter(labels, ["path", "family", "one_shot_type", "source"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in writer.fieldnames} for r in rows)
    with (args.out / "licences.jsonl").open("w", encoding="utf-8") as manifest:
        for n, r in enumerate(rows):
            licence = {"id": f"REAL-{n:04d}", "holder": r["source"], "allowed_uses": ["search"],
                       "attribution": f"{r['source']}: {r['licence']}"}  # fmt: skip
            manifest.write(json.dumps({"path": r["path"], "licence": licence}) + "\n")
    families: dict[str, int] = {}
    for r in rows:
        families[r["family"]] = families.get(r["family"], 0) + 1
    kinds: dict[str, int] = {}
    for r in rows:
        kind = r["one_shot_type"] or "(loop or note)"
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"{len(rows)} files in {args.out}; families {families}; types {kinds}")


if __name__ == "__main__":
    main()
