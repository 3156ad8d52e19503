"""From retrieved catalog items to generator inputs: an enriched prompt and an init audio.

Pure functions over arrays and payloads; the orchestration decides which items to use.

- **Weights**: each seed's share of the fused retrieval score.
- **Targets**: tempo and key of the take — the request's, else the seeds' weighted consensus.
- **Enriched prompt**: the user's prompt plus what the seeds agree on (their instrument
  families, a style or mood most of them carry, tempo, key) and nothing that contradicts the
  prompt (no genre it does not imply, no mood opposed to one it says), de-duplicated, heaviest
  first, cut to the text encoder's token budget.
- **Init audio**: each seed aligned to the target tempo (time-stretch; MIDI re-rendered at the
  target tempo) and key (pitch-shift; MIDI transposed), cut to whole bars and looped to the
  take's length, loudness-matched, and layered by role — the best seed of each instrument
  family, mixed by weight.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pretty_midi

from audio.decode import decode_audio
from audio.signal import match_channels, resample
from index.analysis import PITCH_CLASSES, loudness_lufs, normalise_key, relative_key
from index.render import render_midi
from rag.roles import STYLE_WORDS, roles_in, styles_in

LAYER_LUFS = -20.0  # every layer is brought to this loudness before weighting
MIX_LUFS = -16.0  # the init mix's loudness
MIX_PEAK = 0.89  # about -1 dBFS
BEATS_PER_BAR = 4  # the catalog's loops are 4/4; a bar is the unit we loop on
UNPITCHED = {"drums", "fx"}  # families never pitch-shifted


@dataclass
class Seed:
    """One retrieved item that seeds a take."""

    id: str
    payload: dict[str, Any]
    score: float
    weight: float = 0.0
    pinned: bool = False
    path: Path | None = None  # the audio/MIDI file, when its catalog root is known
    layered: bool = False
    alignment: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return str(self.payload.get("instrument") or "unknown")


def assign_weights(seeds: Sequence[Seed]) -> None:
    """Each seed's weight: its share of the summed scores (pinned seeds count as the best).

    >>> s = [Seed("a", {}, 0.5), Seed("b", {}, 0.25, pinned=True)]
    >>> assign_weights(s); [x.weight for x in s]
    [0.5, 0.5]
    """
    if not seeds:
        return
    best = max(s.score for s in seeds)
    scores = [best if s.pinned else s.score for s in seeds]
    total = sum(scores) or 1.0
    for seed, score in zip(seeds, scores, strict=True):
        seed.weight = round(score / total, 6)


def pick_by_role(candidates: Sequence[Seed], k: int) -> list[Seed]:
    """The best ``k`` candidates with at most half of them (rounded up) from one role.

    Candidates come best first. The init audio layers one seed per instrument family, so k
    drum loops would seed a drums-only take; the cap keeps the next-best other roles in, and
    any slots still free are filled in rank order. The result keeps the ranking.

    >>> seeds = [Seed(f"d{i}", {"instrument": "drums"}, 1 - i / 10) for i in range(4)]
    >>> seeds.insert(3, Seed("b", {"instrument": "bass"}, 0.65))
    >>> [s.id for s in pick_by_role(seeds, 3)]
    ['d0', 'd1', 'b']
    >>> [s.id for s in pick_by_role(seeds, 4)]
    ['d0', 'd1', 'd2', 'b']
    """
    cap = max(1, (k + 1) // 2)
    per_role: dict[str, int] = defaultdict(int)
    chosen: list[Seed] = []
    for seed in candidates:
        if len(chosen) < k and per_role[seed.family] < cap:
            chosen.append(seed)
            per_role[seed.family] += 1
    for seed in candidates:
        if len(chosen) < k and seed not in chosen:
            chosen.append(seed)
    rank = {id(seed): n for n, seed in enumerate(candidates)}
    return sorted(chosen, key=lambda s: rank[id(s)])


# -- targets ---------------------------------------------------------------------------------


def fold_bpm(bpm: float, reference: float) -> float:
    """``bpm`` halved or doubled to lie nearest ``reference`` (half/double time are one groove).

    >>> fold_bpm(62.0, 120.0), fold_bpm(250.0, 120.0), fold_bpm(118.0, 120.0)
    (124.0, 125.0, 118.0)
    """
    candidates = (bpm / 2, bpm, bpm * 2)
    return min(candidates, key=lambda c: abs(math.log(c / reference)))


def consensus_bpm(seeds: Sequence[Seed]) -> float | None:
    """Weighted median tempo of the seeds, folded to the heaviest seed's octave."""
    tempos = [(float(s.payload["bpm"]), s.weight) for s in seeds if s.payload.get("bpm")]
    if not tempos:
        return None
    reference = max(tempos, key=lambda t: t[1])[0]
    folded = sorted((fold_bpm(bpm, reference), w) for bpm, w in tempos)
    half, acc = sum(w for _, w in folded) / 2, 0.0
    for bpm, weight in folded:
        acc += weight
        if acc >= half:
            return round(bpm, 2)
    return round(folded[-1][0], 2)


def consensus_key(seeds: Sequence[Seed]) -> str | None:
    """The key with the most weight among pitched seeds (relative keys vote for each other)."""
    votes: dict[str, float] = defaultdict(float)
    for seed in seeds:
        key = seed.payload.get("key")
        if not key or seed.family in UNPITCHED:
            continue
        key = normalise_key(str(key))
        votes[key] += seed.weight
        votes[relative_key(key)] += seed.weight * 0.5
    return max(votes, key=lambda k: votes[k]) if votes else None


def semitones_between(source: str, target: str) -> int:
    """Shift in semitones (−6…+5) taking ``source`` to ``target``, via the relative key when
    the modes differ (A minor → C major is no shift at all).

    >>> semitones_between("A minor", "C major"), semitones_between("C major", "D major")
    (0, 2)
    >>> semitones_between("E minor", "C minor")
    -4
    """
    source, target = normalise_key(source), normalise_key(target)
    if source.split()[1] != target.split()[1]:
        source = relative_key(source)
    shift = (PITCH_CLASSES.index(target.split()[0]) - PITCH_CLASSES.index(source.split()[0])) % 12
    return shift - 12 if shift > 5 else shift


# -- prompt ----------------------------------------------------------------------------------


# Moods and the words a prompt may say them with; a seed's mood tag opposed to one the prompt
# says (or to the mode it asks for) is never added to the prompt.
MOOD_WORDS: dict[str, tuple[str, ...]] = {
    "dark": ("dark", "moody", "shadowy", "sinister", "gloomy", "brooding", "ominous"),
    "bright": ("bright", "sunny", "shimmering", "happy", "cheerful"),
    "uplifting": ("uplifting", "euphoric", "hopeful", "anthemic"),
    "melancholic": ("melancholic", "sad", "wistful", "melancholy", "mournful"),
    "aggressive": ("aggressive", "hard", "hardhitting", "angry", "heavy"),
    "chill": ("chill", "laidback", "relaxed", "calm", "mellow", "chilled"),
    "dreamy": ("dreamy", "floating", "hazy", "ethereal"),
    "energetic": ("energetic", "highenergy", "lively"),
    "groovy": ("groovy", "bouncy", "grooving", "funky"),
    "tense": ("tense", "suspenseful", "menacing"),
    "warm": ("warm", "cosy", "cozy"),
    "gritty": ("gritty", "dirty", "raw", "distorted"),
    "hypnotic": ("hypnotic", "repetitive"),
    "driving": ("driving", "propulsive", "relentless"),
    "nostalgic": ("nostalgic", "vintage", "retro"),
    "playful": ("playful", "cheeky", "fun", "quirky"),
}  # fmt: skip
OPPOSED_MOODS: dict[str, frozenset[str]] = {
    "dark": frozenset({"bright", "uplifting", "playful", "dreamy", "warm", "chill"}),
    "bright": frozenset({"dark", "melancholic", "tense", "gritty"}),
    "uplifting": frozenset({"dark", "melancholic", "tense"}),
    "melancholic": frozenset({"bright", "uplifting", "playful", "energetic"}),
    "aggressive": frozenset({"chill", "dreamy", "warm", "playful"}),
    "chill": frozenset({"aggressive", "energetic", "driving", "tense", "dark"}),
    "dreamy": frozenset({"aggressive", "gritty", "driving", "dark"}),
    "energetic": frozenset({"chill", "melancholic", "dreamy"}),
    "tense": frozenset({"chill", "playful", "uplifting", "bright", "warm"}),
    "warm": frozenset({"aggressive", "dark", "gritty", "tense"}),
    "gritty": frozenset({"dreamy", "bright", "warm"}),
    "driving": frozenset({"chill", "dreamy"}),
    "playful": frozenset({"dark", "tense", "aggressive", "melancholic"}),
}
MODE_OPPOSED_MOODS: dict[str, frozenset[str]] = {
    "minor": frozenset({"bright", "uplifting", "playful"}),
    "major": frozenset({"dark", "melancholic", "tense"}),
}


def prompt_moods(prompt: str) -> set[str]:
    """The moods a prompt says, in any of their words.

    >>> sorted(prompt_moods("a moody, laid-back groove"))
    ['chill', 'dark']
    """
    tokens = _words(prompt)
    joined = {"".join(pair) for pair in itertools.pairwise(tokens)}
    said = set(tokens) | joined  # "laid-back" → "laidback", "high energy" → "highenergy"
    return {mood for mood, spellings in MOOD_WORDS.items() if said & set(spellings)}


def prompt_mode(prompt: str) -> str | None:
    """ "minor" or "major" when the prompt asks for one (and not both)."""
    modes = {"minor", "major"} & set(_words(prompt))
    return modes.pop() if len(modes) == 1 else None


def contradiction(phrase: str, prompt: str) -> str | None:
    """Why adding ``phrase`` would contradict ``prompt``, or None when it would not.

    A genre the prompt does not imply, a mood opposed to one it says (or to the mode it asks
    for), a key in the other mode, an instrument it excludes ("no drums").

    >>> contradiction("dreamy", "dark minor bass groove with tight drums")
    'dreamy is opposed to dark'
    >>> contradiction("drum-and-bass", "dark minor bass groove with tight drums")
    'genre drum-and-bass is not implied by the prompt'
    >>> contradiction("A minor", "dark minor bass groove"), contradiction("gritty", "dark bass")
    (None, None)
    """
    if phrase in STYLE_WORDS:
        return (
            None if phrase in styles_in(prompt) else f"genre {phrase} is not implied by the prompt"
        )
    said = prompt_moods(prompt)
    mode = prompt_mode(prompt)
    if phrase in MOOD_WORDS:
        opposed = sorted(m for m in said if phrase in OPPOSED_MOODS.get(m, ()))
        if opposed:
            return f"{phrase} is opposed to {', '.join(opposed)}"
        if mode and phrase in MODE_OPPOSED_MOODS[mode] and phrase not in said:
            return f"{phrase} is opposed to {mode}"
        return None
    parts = phrase.split()
    if mode and len(parts) == 2 and parts[1] in ("minor", "major") and parts[1] != mode:
        return f"key {phrase} is not {mode}"
    if phrase in roles_in(prompt)[1]:
        return f"the prompt excludes {phrase}"
    return None


def enrich_prompt(
    prompt: str,
    seeds: Sequence[Seed],
    *,
    bpm: float | None,
    key: str | None,
    count_tokens: Callable[[str], int],
    max_tokens: int,
) -> tuple[str, list[str]]:
    """The prompt plus what the seeds agree on, never what contradicts it, in the token budget.

    Candidates: each seed's instrument family (it is what the init audio holds), a genre or
    mood tag carried by more than half of the seeds, then the tempo and key. A phrase that
    :func:`contradiction` refuses is left out (no genre the prompt does not imply, no "dreamy"
    for "dark"), as is one whose words the prompt (or an earlier phrase) already has. Phrases
    go heaviest first and the lightest are dropped until the text fits ``max_tokens``.

    >>> seeds = [Seed("d", {"instrument": "drums", "genre": "drum-and-bass",
    ...                     "tags": ["dark", "dreamy"]}, 1.0, weight=0.5),
    ...          Seed("b", {"instrument": "bass", "genre": "drum-and-bass", "tags": ["dark"]},
    ...               1.0, weight=0.5)]
    >>> enrich_prompt("dark minor bass groove with tight drums", seeds, bpm=172.0,
    ...               key="A minor", count_tokens=lambda t: len(t.split()), max_tokens=77)[1]
    ['172 BPM', 'A minor']
    """
    votes: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for seed in seeds:
        payload = seed.payload
        if payload.get("instrument"):
            votes[str(payload["instrument"])] += 1.0 + seed.weight  # every part is named
            counts[str(payload["instrument"])] = len(seeds)
        for tag in {payload.get("genre"), *(payload.get("tags") or ())} - {None, ""}:
            votes[str(tag)] += seed.weight
            counts[str(tag)] += 1
    agreed = [p for p in votes if counts[p] * 2 > len(seeds)]
    ranked = sorted(agreed, key=lambda p: (-votes[p], p))
    if bpm:
        ranked.append(f"{bpm:.0f} BPM")
    if key:
        ranked.append(key)
    seen = set(_words(prompt))
    added: list[str] = []
    for phrase in ranked:
        phrase_words = _words(phrase)
        if not phrase_words or set(phrase_words) <= seen or contradiction(phrase, prompt):
            continue
        added.append(phrase)
        seen.update(phrase_words)
    while added and count_tokens(_join(prompt, added)) > max_tokens:
        added.pop(_lightest(added, votes))
    return _join(prompt, added), added


def _words(text: str) -> list[str]:
    return [w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split() if w]


def _join(prompt: str, added: Sequence[str]) -> str:
    return ", ".join([prompt.strip(), *added]) if added else prompt.strip()


def _lightest(added: Sequence[str], votes: dict[str, float]) -> int:
    """Drop descriptive tags before tempo/key; among tags, the lightest (last) first."""
    tags = [i for i, p in enumerate(added) if p in votes]
    return tags[-1] if tags else len(added) - 1


# -- audio -----------------------------------------------------------------------------------


def load_seed_audio(
    seed: Seed, *, target_bpm: float | None, target_key: str | None, sample_rate: int
) -> np.ndarray:
    """The seed's audio (channels, samples) at ``sample_rate``, aligned to tempo and key.

    Records what was done in ``seed.alignment``. Raises ``ValueError``/``UnusableFile`` with a
    reason when the file cannot be used.
    """
    if seed.path is None:
        raise ValueError("its catalog folder is not known here (index it from this machine)")
    source_bpm = seed.payload.get("bpm")
    source_key = seed.payload.get("key")
    shift = 0
    if target_key and source_key and seed.family not in UNPITCHED:
        shift = semitones_between(str(source_key), target_key)
    rate = 1.0  # >1 plays faster; half/double-time sources keep their feel
    if target_bpm and source_bpm:
        rate = target_bpm / fold_bpm(float(source_bpm), target_bpm)
    if seed.payload.get("kind") == "midi":
        audio = _render_midi_aligned(seed.path, rate, shift, sample_rate)
        seed.alignment = {"method": "midi re-render", "tempo_ratio": round(rate, 4)}
    else:
        decoded = decode_audio(seed.path)
        audio = resample(decoded.samples, decoded.sr, sample_rate)
        audio = _stretch_and_shift(audio, sample_rate, rate, shift)
        seed.alignment = {"method": "time-stretch + pitch-shift", "tempo_ratio": round(rate, 4)}
    seed.alignment.update(
        {
            "source_bpm": source_bpm,
            "target_bpm": target_bpm,
            "source_key": source_key,
            "target_key": target_key if shift or source_key else None,
            "semitones": shift,
        }
    )
    return audio


def _render_midi_aligned(path: Path, rate: float, shift: int, sample_rate: int) -> np.ndarray:
    """Re-render a MIDI pattern faster/slower by ``rate`` and transposed by ``shift``."""
    midi = pretty_midi.PrettyMIDI(str(path))
    end = midi.get_end_time()
    if rate != 1.0 and end > 0:
        midi.adjust_times(np.array([0.0, end]), np.array([0.0, end / rate]))
    for instrument in midi.instruments:
        if instrument.is_drum:
            continue
        for note in instrument.notes:
            note.pitch = int(np.clip(note.pitch + shift, 0, 127))
    return render_midi(midi, sr=sample_rate)


def _stretch_and_shift(audio: np.ndarray, sr: int, rate: float, shift: int) -> np.ndarray:
    if abs(rate - 1.0) > 0.005:
        audio = np.stack([librosa.effects.time_stretch(ch, rate=rate) for ch in audio])
    if shift:
        audio = np.stack([librosa.effects.pitch_shift(ch, sr=sr, n_steps=shift) for ch in audio])
    return audio.astype(np.float32)


def loop_to_length(audio: np.ndarray, sr: int, length: int, bpm: float | None) -> np.ndarray:
    """Cut ``audio`` to whole bars at ``bpm`` (when known) and repeat it to ``length`` samples.

    >>> y = np.arange(10, dtype=np.float32)[None]
    >>> loop_to_length(y, 1, 25, None)[0, 8:14].tolist()
    [8.0, 9.0, 0.0, 1.0, 2.0, 3.0]
    """
    if bpm:
        bar = BEATS_PER_BAR * 60.0 / bpm * sr
        bars = max(1, math.floor(audio.shape[1] / bar + 0.05))  # 5 % slack for stretch rounding
        cut = round(bars * bar)
        if cut > audio.shape[1]:
            audio = np.pad(audio, ((0, 0), (0, cut - audio.shape[1])))
        audio = audio[:, :cut]
    if audio.shape[1] == 0:
        return np.zeros((audio.shape[0], length), dtype=np.float32)
    repeats = math.ceil(length / audio.shape[1])
    return np.tile(audio, (1, repeats))[:, :length]


def gain_to(audio: np.ndarray, sr: int, lufs: float) -> np.ndarray:
    """``audio`` brought to ``lufs`` integrated loudness (RMS-based when too short to gate)."""
    measured = loudness_lufs(audio, sr)
    if measured is None:
        rms = float(np.sqrt(np.mean(audio**2))) or 1e-9
        measured = 20 * math.log10(rms) - 0.7  # close to LUFS for broadband material
    return (audio * 10 ** ((lufs - measured) / 20)).astype(np.float32)


def layer(layers: Sequence[tuple[np.ndarray, float]], sr: int) -> np.ndarray:
    """Loudness-matched layers mixed by weight, the mix normalised and kept below clipping."""
    mix = sum(gain_to(audio, sr, LAYER_LUFS) * weight for audio, weight in layers)
    mix = gain_to(np.asarray(mix, dtype=np.float32), sr, MIX_LUFS)
    peak = float(np.abs(mix).max())
    return (mix * (MIX_PEAK / peak) if peak > MIX_PEAK else mix).astype(np.float32)


def build_init_audio(
    seeds: Sequence[Seed],
    *,
    target_bpm: float | None,
    target_key: str | None,
    sample_rate: int,
    channels: int,
    length: int,
) -> np.ndarray | None:
    """The init audio from the best seed of each role, or None when no seed could be used.

    Seeds that cannot be loaded are skipped with the reason in their ``alignment``; the
    others of an already-seeded role are recorded as not layered.
    """
    roles: dict[str, Seed] = {}
    layers: list[tuple[np.ndarray, float]] = []
    for seed in sorted(seeds, key=lambda s: (not s.pinned, -s.weight)):
        if seed.family in roles and not seed.pinned:
            first = roles[seed.family].payload.get("path") or roles[seed.family].id
            seed.alignment = {"skipped": f"role {seed.family} already seeded by {first}"}
            continue
        try:
            audio = load_seed_audio(
                seed, target_bpm=target_bpm, target_key=target_key, sample_rate=sample_rate
            )
        except (OSError, ValueError) as err:
            seed.alignment = {"skipped": f"unusable: {err}"}
            continue
        audio = match_channels(audio, channels)
        layers.append((loop_to_length(audio, sample_rate, length, target_bpm), seed.weight))
        roles.setdefault(seed.family, seed)
        seed.layered = True
    if not layers:
        return None
    total = sum(w for _, w in layers) or 1.0
    return layer([(audio, w / total) for audio, w in layers], sample_rate)
