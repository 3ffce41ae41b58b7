"""Secrets at rest (registry passwords, cluster credentials), encrypted with Fernet.

Keys come from SLIPWAY_ENCRYPTION_KEYS (the first encrypts, all decrypt, so a key can be rotated
by putting the new one first); without it a key is derived from the secret key.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


def _fernet() -> MultiFernet:
    keys = list(settings.ENCRYPTION_KEYS)
    if not keys:
        derived = hashlib.sha256(b"slipway-secrets:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(derived).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ValueError("a stored secret cannot be decrypted with the configured encryption keys") from None


class EncryptedTextField(models.TextField):
    """Stores ciphertext; Python code sees plaintext. Never rendered by forms or serializers."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else ""

    def get_prep_value(self, value):
        return encrypt(value or "")

    def to_python(self, value):
        return value or ""
