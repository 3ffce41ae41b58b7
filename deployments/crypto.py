"""Secrets at rest (registry passwords, cluster credentials), encrypted with Fernet.

Keys come from SLIPWAY_ENCRYPTION_KEYS (the first encrypts, all decrypt, so a key can be rotated
by putting the new one first); without it a key is derived from the secret key.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.conf import settings
from django.db import models
from django.utils.html import format_html
from django.utils.text import capfirst


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


class WriteOnlySecret(forms.Textarea):
    """An empty box and whether a value is stored: the secret itself never reaches a page."""

    def __init__(self, attrs=None):
        super().__init__({"rows": 2, "autocomplete": "off", **(attrs or {})})

    def render(self, name, value, attrs=None, renderer=None):
        box = super().render(name, "", attrs, renderer)
        state = "set; leave empty to keep it" if value else "not set"
        return format_html('{}<div class="help">Stored encrypted, never shown: {}.</div>', box, state)


class EncryptedTextField(models.TextField):
    """Stores ciphertext; Python code sees plaintext. Forms get a write-only box (any model form, the
    Django admin's included, whichever model it is); serializers declare it write-only."""

    def formfield(self, **kwargs):
        return forms.CharField(required=False, widget=WriteOnlySecret, label=capfirst(self.verbose_name))

    def save_form_data(self, instance, data):
        if data:  # empty keeps the stored secret: the form never had it to send back
            super().save_form_data(instance, data)

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else ""

    def get_prep_value(self, value):
        return encrypt(value or "")

    def to_python(self, value):
        return value or ""
