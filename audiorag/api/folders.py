"""Where the service keeps files: everything under the data dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Folders:
    data_dir: Path
    outputs_dir: Path

    @property
    def uploads(self) -> Path:
        """Catalogs uploaded through the API, ``<tenant>/<name>/``."""
        return self.data_dir / "uploads"

    @property
    def scratch(self) -> Path:
        """Files a request needs only while it runs (search clips, watermark checks)."""
        return self.data_dir / "tmp"

    @property
    def inputs(self) -> Path:
        """Reference clips of generation jobs, kept so a take can be re-run."""
        return self.data_dir / "inputs"

    @property
    def previews(self) -> Path:
        """MIDI items rendered to WAV for listening, by content hash."""
        return self.data_dir / "previews"

    def takes(self, tenant: str) -> Path:
        folder = self.outputs_dir / tenant
        folder.mkdir(parents=True, exist_ok=True)
        return folder
