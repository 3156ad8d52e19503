"""Taking files from clients safely: body caps, content sniffing, safe names, capped copies.

* A request body is capped before it is parsed (:class:`BodyLimit`): a declared Content-Length
  over the cap is refused unread, and a chunked body is cut off the moment it passes the cap, so
  no declared size — honest or not — makes the server read or buffer more than the cap.
* A file's type comes from its first bytes, never from its name; the stored name gets the
  extension of what the bytes are.
* Names are reduced to a plain basename (no directories, traversal, absolute paths, control
  characters or leading dots) and joined under a folder we choose, then checked to still be in it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CHUNK = 1 << 20

# kind, canonical extension, description
SNIFFED = {
    "wav": ("stem", ".wav", "WAV"),
    "flac": ("stem", ".flac", "FLAC"),
    "ogg": ("stem", ".ogg", "Ogg"),
    "mp3": ("stem", ".mp3", "MP3"),
    "midi": ("midi", ".mid", "MIDI"),
}


class UploadRejected(ValueError):
    """A file that will not be stored; the message says why."""


def sniff(head: bytes) -> str | None:
    """What the first bytes of a file say it is (a key of :data:`SNIFFED`), or None.

    >>> sniff(b"RIFF\\x24\\x00\\x00\\x00WAVEfmt "), sniff(b"fLaC"), sniff(b"MThd\\x00")
    ('wav', 'flac', 'midi')
    >>> sniff(b"%PDF-1.7"), sniff(b"RIFF\\x24\\x00\\x00\\x00AVI "), sniff(b"")
    (None, None, None)
    >>> sniff(b"ID3\\x04"), sniff(bytes([0xFF, 0xFB, 0x90])), sniff(b"OggS\\x00")
    ('mp3', 'mp3', 'ogg')
    """
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"MThd":
        return "midi"
    if head[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame header: 11 set sync bits, a valid version and layer III.
    if len(head) >= 3 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        version, layer = (head[1] >> 3) & 0b11, (head[1] >> 1) & 0b11
        bitrate = head[2] >> 4
        if version != 0b01 and layer == 0b01 and bitrate not in (0, 0b1111):
            return "mp3"
    return None


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_name(raw: str | None, fallback: str = "upload") -> str:
    """A plain, harmless basename for a client-supplied file name.

    >>> safe_name("../../etc/passwd"), safe_name("/abs/x.wav"), safe_name("C:\\\\a\\\\b.wav")
    ('passwd', 'x.wav', 'b.wav')
    >>> safe_name("..."), safe_name(".hidden.wav"), safe_name("a\\x00b\\nc.wav"), safe_name("")
    ('upload', 'hidden.wav', 'abc.wav', 'upload')
    """
    name = unicodedata.normalize("NFKC", raw or "")
    # Control characters (NUL included) are dropped before splitting, so they cannot hide a
    # separator; both separators count, whatever the client's OS.
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.split(r"[\\/]", name)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    name = name.lstrip(".-_ ")
    stem, dot, ext = name.rpartition(".")
    name = f"{stem[:100]}.{ext}" if dot and len(ext) <= 8 else name[:100]
    return name if name and name not in {".", ".."} else fallback


def with_extension(name: str, extension: str) -> str:
    """``name`` with its audio/MIDI extension replaced by ``extension`` (the sniffed one)."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem and f".{ext.lower()}" in {".wav", ".flac", ".ogg", ".mp3", ".mid", ".midi"}:
        name = stem
    return f"{name}{extension}"


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refusing anything that would land outside ``folder``."""
    base = folder.resolve()
    target = (base / name).resolve()
    if target.parent != base:
        raise UploadRejected(f"unsafe file name {name!r}")
    return target


def copy_capped(source: BinaryIO, target: Path, max_bytes: int) -> tuple[int, bytes]:
    """Copy ``source`` to ``target`` in chunks, stopping at ``max_bytes``.

    Returns (bytes written, the first 16 bytes). Over the cap, the partial file is removed and
    :class:`UploadRejected` raised; nothing more than a chunk is ever in memory.
    """
    written = 0
    head = b""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with target.open("wb") as out:
            while chunk := source.read(CHUNK):
                if not head:
                    head = chunk[:16]
                written += len(chunk)
                if written > max_bytes:
                    raise UploadRejected(f"oversized: more than {max_bytes / 2**20:.1f} MiB")
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if written == 0:
        target.unlink(missing_ok=True)
        raise UploadRejected("empty file (0 bytes)")
    return written, head


JSON_MAX_BYTES = 1 << 20  # every JSON body of the API is a few KiB; uploads are multipart


def body_cap(upload_max_bytes: Callable[[], int]) -> Callable[[Scope], int]:
    """The cap for a request: the upload limit for multipart bodies, 1 MiB for anything else
    (a JSON body is read whole into memory, so it gets no upload-sized allowance)."""

    def cap(scope: Scope) -> int:
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
        if content_type.lower().startswith(b"multipart/form-data"):
            return upload_max_bytes()
        return JSON_MAX_BYTES

    return cap


class BodyLimit:
    """ASGI middleware: request bodies over ``max_bytes(scope)`` get 413 and are never read
    past it."""

    def __init__(self, app: ASGIApp, max_bytes: Callable[[Scope], int]) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.max_bytes(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > cap
            except ValueError:
                too_big = False  # let the server reject the malformed header
            if too_big:
                await _refuse(send, cap)
                return
        seen = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    # Answer 413 now and tell the app the client is gone: whatever the app makes
                    # of that (FastAPI turns a broken form into a 400) is never sent.
                    refused = True
                    if not started:
                        await _refuse(send, cap)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise


async def _refuse(send: Send, cap: int) -> None:
    body = b'{"detail":"request body too large: the limit is ' + str(cap).encode() + b' bytes"}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
