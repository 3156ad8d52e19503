"""Short-lived signed URLs for the audio and spectrogram routes, so a page can hand them to an
``<audio>`` or ``<img>`` element (which cannot send an Authorization header) and let the browser
stream with range requests.

A token reads ``<key id>.<expiry>.<signature>``: the signature is an HMAC-SHA256, keyed by a
deployment secret, over the key id, the URL path and the expiry (Unix seconds). It is accepted
only on the path it was issued for, only until it expires, and only while the key that asked for
it is live — so it is bound to that key's tenant and dies with the key. The secret is
``data_dir/url-signing.key`` (0600, made once, shared by every API process on that data dir).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from pathlib import Path
from urllib.parse import quote

from audiorag.keyfiles import secret_file

TTL_S = 600  # ten minutes: long enough to listen, short enough that a leaked URL goes stale
SECRET_FILE = "url-signing.key"
_TOKEN = re.compile(r"([0-9a-f]{12})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


def signing_secret(data_dir: Path) -> bytes:
    """The deployment's URL-signing secret, made once (atomically, ``O_EXCL``) in ``data_dir``."""
    return secret_file(Path(data_dir) / SECRET_FILE)


class UrlSigner:
    def __init__(self, secret: bytes, ttl_s: int = TTL_S) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _signature(self, key_id: str, path: str, expires: int) -> str:
        message = f"{key_id}\n{path}\n{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def token(self, key_id: str, path: str, *, now: float | None = None) -> tuple[str, int]:
        """A token for ``path`` (no query string) and its expiry."""
        expires = int((time.time() if now is None else now) + self.ttl_s)
        return f"{key_id}.{expires}.{self._signature(key_id, path, expires)}", expires

    def url(self, key_id: str, path: str, query: str = "") -> str:
        """``path`` with ``?token=…`` (after ``query``, e.g. ``format=wav``)."""
        token, _ = self.token(key_id, path)
        sep = "&" if query else ""
        return f"{path}?{query}{sep}token={quote(token)}"

    def verify(self, token: str, path: str, *, now: float | None = None) -> str | None:
        """The key id the token was issued to, if it is genuine, for ``path`` and unexpired."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        key_id, expires_text, signature = match.groups()
        expires = int(expires_text)
        current = time.time() if now is None else now
        if expires < current or expires > current + self.ttl_s + 60:
            return None
        expected = self._signature(key_id, path, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return None
        return key_id
