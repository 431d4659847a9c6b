"""Secrets at rest (client secrets, booking API keys, hook secrets) are encrypted with a key derived from SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"roombridge/secrets-at-rest/v1"


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("stored secret cannot be decrypted: was SECRET_KEY changed?") from None


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(value: str) -> str:
    """A one-way fingerprint of a shared secret we only ever need to compare (e.g. a subscription's clientState)."""
    return hashlib.sha256(value.encode()).hexdigest()


def same_digest(value: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(value), stored_digest)
