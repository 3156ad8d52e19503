"""Where each indexed catalog lives on disk: catalog name → root folder.

Points store paths relative to their catalog's root (so a catalog can be indexed from any
mount), and rendering needs the audio itself, so the root of every indexed catalog is kept in
``data_dir/catalogs.json``. Written after each index run; read when seeding a render.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class CatalogRoots:
    """A small JSON registry, replaced atomically on every change."""

    def __init__(self, data_dir: Path) -> None:
        self.file = Path(data_dir) / "catalogs.json"

    def all(self) -> dict[str, str]:
        if not self.file.is_file():
            return {}
        try:
            return dict(json.loads(self.file.read_text()))
        except (OSError, ValueError):
            return {}

    def root(self, catalog: str) -> Path | None:
        root = self.all().get(catalog)
        return Path(root) if root else None

    def set(self, catalog: str, root: Path) -> None:
        roots = self.all()
        roots[catalog] = str(Path(root).resolve())
        self.file.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=self.file.parent, prefix=".catalogs-")
        with os.fdopen(handle, "w") as out:
            json.dump(roots, out, indent=2, sort_keys=True)
        os.replace(temp, self.file)

    def resolve(self, payload: dict) -> Path | None:
        """The file behind a point's payload, or None when its catalog root is unknown."""
        root = self.root(str(payload.get("catalog", "")))
        path = Path(str(payload.get("path", "")))
        if path.is_absolute():
            return path
        return root / path if root is not None else None
