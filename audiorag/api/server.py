"""``audiorag serve``'s uvicorn server: on the first SIGTERM/SIGINT it drains the generation
queue before exiting.

Plain uvicorn stops listening the moment it is told to exit. Here the first signal makes the job
queue refuse new work (503 + Retry-After: the port stays open, so clients get an answer rather
than a refused connection) while accepted jobs finish, for up to ``drain_s``; then the server
exits as usual. Jobs still queued then stay queued in the database and run on the next start; a
job cut off mid-render is queued again. A second signal exits at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

from audiorag.api.jobs import JobQueue

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, jobs: JobQueue, drain_s: float) -> None:
        super().__init__(config)
        self.jobs = jobs
        self.drain_s = drain_s
        self.draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)
            return
        self.draining = True
        self.jobs.drain()
        log.warning("draining: accepted jobs may finish for up to %g s", self.drain_s)
        threading.Thread(target=self._exit_when_idle, args=(sig, frame), daemon=True).start()

    def _exit_when_idle(self, sig: int, frame: FrameType | None) -> None:
        if not self.jobs.wait_idle(self.drain_s):
            log.warning("drain timed out: unfinished jobs run on the next start")
        super().handle_exit(sig, frame)
