"""Decoding stems into float arrays, with a clear reason whenever a file cannot be used.

libsndfile (through ``soundfile``) decodes WAV, FLAC, OGG/Vorbis/Opus and MP3 natively, so one real
decoder covers every format we accept; nothing shells out to ffmpeg. Array helpers (resample,
fit_length, …) live in :mod:`audio.signal`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

STEM_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".mp3"})
MIDI_EXTENSIONS: frozenset[str] = frozenset({".mid", ".midi"})

# Peak below this is treated as digital silence: nothing to analyse or embed.
SILENCE_DBFS = -80.0
MP3_LENGTH_SLACK = 2 * 1152  # frames; see length_slack


class UnusableFile(ValueError):
    """A file that cannot be indexed; the message says why, for the report, and ``code`` says
    it for programs (``index.prepare.ProblemReason`` holds the same values)."""

    def __init__(self, message: str, code: str = "undecodable") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    """Upper bounds that keep one hostile or huge file from stalling a batch."""

    max_bytes: int = 512 * 1024 * 1024
    max_seconds: float = 15 * 60.0
    # One-shots (closed hi-hats, shakers, side-sticks) run 30-90 ms and shorter: only a clip
    # too short to hold one cycle of audible sound (2 ms, a 500 Hz period) is refused.
    min_seconds: float = 0.002
    # Decoded float32 size (frames x channels x 4): bounds memory whatever the header claims.
    max_decoded_bytes: int = 2 * 1024**3


@dataclass
class Audio:
    """Decoded audio: ``samples`` is float32 (channels, frames) in [-1, 1]."""

    samples: np.ndarray
    sr: int
    # What the bytes really are (libsndfile's format name: "WAV", "FLAC", "OGG", "MP3", …),
    # whatever the file's extension says.
    container: str = ""

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.sr

    def mono(self) -> np.ndarray:
        return self.samples.mean(axis=0)


def check_size(path: Path, limits: Limits) -> None:
    size = path.stat().st_size
    if size == 0:
        raise UnusableFile("empty file (0 bytes)", "empty")
    if size > limits.max_bytes:
        raise UnusableFile(
            f"oversized: {size / 2**20:.0f} MiB > {limits.max_bytes / 2**20:.0f} MiB",
            "too_large",
        )


def decode_audio(path: Path, limits: Limits = Limits()) -> Audio:
    """Decode a stem to float32 (channels, frames); raise :class:`UnusableFile` with the reason.

    Refuses empty, unreadable, truncated, too short, too long, non-finite and silent audio.
    The container is found from the bytes (libsndfile sniffs it), so a file whose extension
    lies (a FLAC named .wav, an OGG named .mp3) decodes; ``Audio.container`` says what it was.
    Any channel count decodes; callers downmix with :meth:`Audio.mono`.
    """
    check_size(path, limits)
    try:
        with sf.SoundFile(path) as f:
            declared = f.frames
            if declared > 0 and declared / f.samplerate > limits.max_seconds:
                raise UnusableFile(
                    f"too long: {declared / f.samplerate:.0f} s > {limits.max_seconds:.0f} s",
                    "too_long",
                )
            decoded_bytes = declared * f.channels * 4
            if decoded_bytes > limits.max_decoded_bytes:  # e.g. hundreds of channels
                raise UnusableFile(
                    f"oversized: {f.channels} channels x {declared} frames decode to "
                    f"{decoded_bytes / 2**20:.0f} MiB > {limits.max_decoded_bytes / 2**20:.0f} MiB",
                    "too_large",
                )
            data = f.read(dtype="float32", always_2d=True)
            sr, container = f.samplerate, f.format
    except sf.LibsndfileError as err:
        raise UnusableFile(f"not decodable audio ({_short(err)})") from err
    except RuntimeError as err:  # soundfile raises plain RuntimeError for some header errors
        raise UnusableFile(f"not decodable audio ({_short(err)})") from err
    if declared > 0 and data.shape[0] < declared - length_slack(container):
        raise UnusableFile(
            f"truncated: header says {declared} frames, file holds {data.shape[0]}", "truncated"
        )
    if container == "WAV":  # by content: a FLAC named .wav is no RIFF file
        check_wav_complete(path)
    if data.shape[0] == 0:
        raise UnusableFile("no audio frames", "empty")
    if data.shape[0] / sr < limits.min_seconds:
        raise UnusableFile(
            f"too short: {data.shape[0]} samples ({data.shape[0] / sr * 1000:.2f} ms) "
            f"< {limits.min_seconds * 1000:g} ms",
            "too_short",
        )
    if not np.isfinite(data).all():
        raise UnusableFile("audio holds NaN or infinite samples", "non_finite")
    peak = float(np.abs(data).max())
    if peak <= 10 ** (SILENCE_DBFS / 20):
        raise UnusableFile(f"silent: peak below {SILENCE_DBFS:.0f} dBFS", "silent")
    return Audio(np.ascontiguousarray(data.T), sr, container)


def length_slack(container: str) -> int:
    """Frames a complete file of this container may decode short of its declared length.

    An MP3 without a Xing/LAME header (common from CBR encoders) declares a length estimated
    from its bitrate; the decoder then returns up to about two MPEG frames (decoder delay and
    padding, 2 x 1152 samples) less. That is no truncation: every such file would be refused.
    A cut MP3 with the header falls short by far more and is still refused.
    """
    return MP3_LENGTH_SLACK if container == "MP3" else 0


def check_wav_complete(path: Path) -> None:
    """Raise if a RIFF/WAVE file's data chunk claims more bytes than the file holds.

    libsndfile quietly shortens a truncated WAV to what is there, so the cut would go unnoticed.
    """
    with path.open("rb") as f:
        header = f.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # RF64/W64 and friends: leave to libsndfile
        while chunk := f.read(8):
            if len(chunk) < 8:
                return
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                available = path.stat().st_size - f.tell()
                if size not in (0, 0xFFFFFFFF) and size > available:
                    raise UnusableFile(
                        f"truncated: data chunk declares {size} bytes, file holds {available}",
                        "truncated",
                    )
                return
            f.seek(size + (size & 1), 1)  # chunks are word-aligned


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return text[:160]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
