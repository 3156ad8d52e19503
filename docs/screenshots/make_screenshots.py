"""Re-make the web page's screenshots in this folder from the end-to-end test run.

    .venv/bin/python docs/screenshots/make_screenshots.py

Runs ``tests/test_web_e2e.py`` (real headless Chromium against the real app with tiny models)
with ``AUDIORAG_WEB_SCREENSHOTS`` pointing here; needs Debian's ``chromium`` and the
``playwright`` package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

if __name__ == "__main__":
    env = {**os.environ, "AUDIORAG_WEB_SCREENSHOTS": str(HERE)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["tests/test_web_e2e.py", *sys.argv[1:]]
    sys.exit(subprocess.call(command, cwd=ROOT, env=env))
