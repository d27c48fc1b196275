"""Encryption at rest: every token goes through a Vault before it touches the database.

`BOT_SECRET_KEY` holds one or more Fernet keys, comma-separated: the first encrypts, all
of them decrypt (MultiFernet), so a key can be rotated without losing stored tokens.
There is no plaintext fallback: no key, no tokens.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


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
        fernets = []
        for position, key in enumerate(part.strip() for part in keys.split(",")):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                # Never echo the key itself, not even a wrong one.
                raise VaultError(f"BOT_SECRET_KEY: key #{position + 1} is not a valid Fernet key (32 url-safe base64 bytes)") from None
        self._fernet = MultiFernet(fernets)
        self._learn(*(part.strip() for part in keys.split(",")))

    def _learn(self, *values: str) -> None:
        if self._redactor is not None:
            self._redactor.add(*values)

    def encrypt(self, plaintext: str) -> str:
        self._learn(plaintext)
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            plaintext = self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise _undecryptable() from None
        self._learn(plaintext)
        return plaintext

    def unreadable(self, ciphertext: str | None) -> bool:
        """True if `ciphertext` cannot be decrypted with these keys (the key changed): a health check."""
        if not ciphertext:
            return False
        try:
            self._fernet.decrypt(ciphertext.encode("ascii"))
        except (InvalidToken, ValueError):
            return True
        return False

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the first key (after a key rotation)."""
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
