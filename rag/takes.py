"""Writing a take: audio files, a spectrogram and the manifest, all or nothing.

Everything is written into a hidden temporary folder beside the destination and renamed into
place at the end, so a failed or cancelled render leaves nothing half-written behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

AUDIO_FORMATS = {"wav": ("WAV", "PCM_24"), "flac": ("FLAC", "PCM_24")}


@dataclass
class Take:
    id: str
    folder: Path
    audio: dict[str, Path]  # format → file
    manifest: dict[str, Any]


def new_take_id(now: datetime | None = None) -> str:
    """A sortable, unique take id: ``20261121-194501-3f9a2c``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def write_take(
    out_dir: Path,
    take_id: str,
    audio: np.ndarray,
    sample_rate: int,
    manifest: dict[str, Any],
    formats: tuple[str, ...] = ("wav",),
) -> Take:
    """Write ``out_dir/take_id/`` atomically: audio.<fmt>, spectrogram.png, manifest.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / take_id
    if final.exists():
        raise FileExistsError(f"take folder already exists: {final}")
    partial = Path(tempfile.mkdtemp(prefix=f".partial-{take_id}-", dir=out_dir))
    try:
        os.chmod(partial, 0o777 & ~_umask())  # mkdtemp makes it private; a take is not
        files: dict[str, Path] = {}
        for fmt in formats:
            kind, subtype = AUDIO_FORMATS[fmt]
            name = f"audio.{fmt}"
            sf.write(partial / name, np.clip(audio, -1.0, 1.0).T, sample_rate, subtype, format=kind)
            files[fmt] = final / name
        write_spectrogram(audio, sample_rate, partial / "spectrogram.png", title=take_id)
        manifest = {
            **manifest,
            "outputs": {
                **{fmt: f"audio.{fmt}" for fmt in formats},
                "spectrogram": "spectrogram.png",
            },
        }
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Take(take_id, final, files, manifest)


def write_spectrogram(audio: np.ndarray, sample_rate: int, path: Path, title: str = "") -> None:
    """A log-frequency power spectrogram (dB) of the mono mix, as a PNG."""
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    power = np.abs(librosa.stft(mono, n_fft=2048, hop_length=512)) ** 2
    db = librosa.power_to_db(power, ref=max(float(power.max()), 1e-10), top_db=80)
    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=100)
    image = librosa.display.specshow(
        db, sr=sample_rate, hop_length=512, x_axis="time", y_axis="log", ax=ax, cmap="magma"
    )
    fig.colorbar(image, ax=ax, format="%+.0f dB")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
