"""Encryption at rest: every token goes through a Vault before it touches the database.

`BOT_SECRET_KEY` holds one or more Fernet keys, comma-separated: the first encrypts, all
of them decrypt (MultiFernet), so a key can be rotated without losing stored tokens.
There is no plaintext fallback: no key, no tokens.

`cryptography` (some 7 MB resident, most of it its Rust extension) is imported when a token is first
encrypted or decrypted, not when the Vault is built: an idle `run` checks its keys and whether its stored
tokens are readable at start and every few minutes, and both need only the standard library (a Fernet key
is 32 bytes of url-safe base64; a Fernet token is readable with a key when its HMAC-SHA256 verifies under
that key's signing half, which is Fernet's own check before it decrypts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from typing import Any

FERNET_VERSION = 0x80
# version (1) + timestamp (8) + IV (16) + at least one AES block (16) + HMAC-SHA256 (32)
SHORTEST_TOKEN = 1 + 8 + 16 + 16 + 32


class VaultError(Exception):
    pass


class Vault:
    """`redactor` (bot.util.redaction.Redactor): learns the keys and every token that passes through, so that
    no text logged, printed or stored can carry one."""

    def __init__(self, keys: str | None, *, redactor: Any = None):
        self._redactor = redactor
        if not keys or not keys.strip():
            raise VaultError(
                "BOT_SECRET_KEY is not set: tokens are only ever stored encrypted. Create a key with\n"
                "  python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'\n"
                "and put it in the environment, .env, or a systemd credential"
            )
        self._keys = [part.strip() for part in keys.split(",")]
        # The signing halves, for `unreadable`; decoded as Fernet(key) decodes them, with its rule.
        self._signing_keys = []
        for position, key in enumerate(self._keys):
            try:
                raw = base64.urlsafe_b64decode(key)
            except (ValueError, TypeError):  # binascii.Error, non-ASCII text
                raw = b""
            if len(raw) != 32:
                # Never echo the key itself, not even a wrong one.
                raise VaultError(f"BOT_SECRET_KEY: key #{position + 1} is not a valid Fernet key (32 url-safe base64 bytes)") from None
            self._signing_keys.append(raw[:16])
        self._fernet_lock = threading.Lock()
        self._fernet_now: Any = None
        self._learn(*self._keys)

    @property
    def _fernet(self) -> Any:
        """The MultiFernet of the keys, built (and `cryptography` imported) on first use."""
        with self._fernet_lock:
            if self._fernet_now is None:
                # Lazy for memory (module docstring): an idle service never encrypts or decrypts.
                from cryptography.fernet import Fernet, MultiFernet

                self._fernet_now = MultiFernet([Fernet(key) for key in self._keys])
            return self._fernet_now

    def _learn(self, *values: str) -> None:
        if self._redactor is not None:
            self._redactor.add(*values)

    def encrypt(self, plaintext: str) -> str:
        self._learn(plaintext)
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        from cryptography.fernet import InvalidToken  # lazy for memory, as in _fernet

        try:
            plaintext = self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise _undecryptable() from None
        self._learn(plaintext)
        return plaintext

    def unreadable(self, ciphertext: str | None) -> bool:
        """True if `ciphertext` cannot be decrypted with these keys (the key changed): a health check.

        What Fernet checks before it decrypts, with the standard library: the token's shape and its
        HMAC-SHA256 under each key's signing half. A token whose HMAC verifies was encrypted with that
        key's other half (the two are one key), so decrypting it succeeds."""
        if not ciphertext:
            return False
        try:
            data = base64.urlsafe_b64decode(ciphertext.encode("ascii"))
        except (ValueError, TypeError):  # binascii.Error, non-ASCII text
            return True
        if len(data) < SHORTEST_TOKEN or data[0] != FERNET_VERSION or (len(data) - 25 - 32) % 16:
            return True
        signed, signature = data[:-32], data[-32:]
        return not any(hmac.compare_digest(hmac.new(key, signed, hashlib.sha256).digest(), signature)
                       for key in self._signing_keys)

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the first key (after a key rotation)."""
        from cryptography.fernet import InvalidToken  # lazy for memory, as in _fernet

        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, ValueError):
            # Same contract as decrypt(): a VaultError, never cryptography's bare InvalidToken.
            raise _undecryptable() from None

    def __repr__(self) -> str:
        return "Vault(<keys hidden>)"


def _undecryptable() -> VaultError:
    return VaultError(
        "a stored token cannot be decrypted with BOT_SECRET_KEY: the key changed. "
        "Put the old key after the new one (comma-separated) or log in again"
    )
