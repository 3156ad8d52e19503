"""Errors the orchestration reports to users: each message says what to change, and each
carries a :class:`Refusal` reason that callers branch on (never on the message's words)."""

from __future__ import annotations

from enum import StrEnum


class Refusal(StrEnum):
    """Why a generation request (or one of its seeds) was refused."""

    INVALID = "invalid"  # a field out of range, an unreadable clip: fix the request
    NOT_FOUND = "not-found"  # a pinned item that is not in the request's catalogs
    NOT_LICENSED = "not-licensed"  # a pinned item whose licence does not allow seeding
    BLOCKED_TERM = "blocked-term"  # the prompt names a term nobody in scope licensed


class GenerationError(ValueError):
    """A generation request that cannot be rendered as asked (bad input, unlicensed seed…)."""

    def __init__(self, message: str, reason: Refusal = Refusal.INVALID) -> None:
        super().__init__(message)
        self.reason = reason
