"""The webhook's signature: hex HMAC-SHA256 of the exact body bytes, under a shared secret."""

from __future__ import annotations

import hashlib
import hmac

#: The request header that carries the signature.
SIGNATURE_HEADER = "X-Signature-SHA256"


def sign(secret: bytes, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` under ``secret`` (what ``X-Signature-SHA256`` holds)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is ``body``'s, compared in constant time."""
    return hmac.compare_digest(sign(secret, body), signature.strip().lower())
