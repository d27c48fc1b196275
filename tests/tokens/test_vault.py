"""tokens.vault: Fernet encryption at rest, key rotation, and errors that never echo a key."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tokens.vault import Vault, VaultError

# A Fernet key is 32 bytes in url-safe base64: 43 characters and one "=".
FERNET_KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}=")
TOKEN = "kakao-access-토큰-9f8e7d6c5b4a"


def new_key() -> str:
    return Fernet.generate_key().decode()


# -- round trip and ciphertext ----------------------------------------------------------------


def test_round_trip_returns_the_plaintext_including_non_ascii():
    vault = Vault(new_key())
    assert vault.decrypt(vault.encrypt(TOKEN)) == TOKEN


def test_ciphertext_contains_no_plaintext_in_any_form():
    vault = Vault(new_key())
    ciphertext = vault.encrypt(TOKEN)
    assert TOKEN not in ciphertext
    assert "kakao-access" not in ciphertext
    # Nor the plaintext merely base64-encoded (Fernet is encryption, not encoding).
    assert base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("=")[:12] not in ciphertext
    assert TOKEN.encode() not in base64.urlsafe_b64decode(ciphertext.encode())
    assert ciphertext.isascii()


def test_same_plaintext_encrypts_differently_each_time():
    vault = Vault(new_key())
    first, second = vault.encrypt(TOKEN), vault.encrypt(TOKEN)
    assert first != second
    assert vault.decrypt(first) == vault.decrypt(second) == TOKEN


def test_repr_hides_the_keys():
    key = new_key()
    assert key not in repr(Vault(key))
    assert key not in str(Vault(key))


# -- missing or invalid keys ------------------------------------------------------------------


@pytest.mark.parametrize("keys", [None, "", "   ", "\n"])
def test_missing_key_is_refused_with_a_hint_and_no_key_in_the_message(keys):
    with pytest.raises(VaultError) as caught:
        Vault(keys)
    message = str(caught.value)
    assert "BOT_SECRET_KEY" in message
    assert "Fernet.generate_key" in message  # tells how to make one
    assert not FERNET_KEY_SHAPE.search(message)


def test_invalid_second_key_is_named_by_position_not_by_value():
    good, bad = new_key(), "this-is-my-s3cret-but-not-a-fernet-key"
    with pytest.raises(VaultError) as caught:
        Vault(f"{good},{bad}")
    message = str(caught.value)
    assert "#2" in message
    assert bad not in message and good not in message
    assert "s3cret" not in message
    # The original error (which could carry details of the key) is not chained for tracebacks.
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None


def test_invalid_first_key_is_named_as_key_1():
    # Valid base64 of the wrong length: a key someone truncated.
    truncated = new_key()[:-8] + "="
    with pytest.raises(VaultError) as caught:
        Vault(f"{truncated},{new_key()}")
    assert "#1" in str(caught.value)
    assert truncated not in str(caught.value)
    assert truncated[:20] not in str(caught.value)


def test_keys_are_stripped_of_whitespace_around_commas():
    first, second = new_key(), new_key()
    vault = Vault(f" {first} ,\t{second}\n")
    assert Vault(first).decrypt(vault.encrypt(TOKEN)) == TOKEN


# -- rotation ---------------------------------------------------------------------------------


def test_token_encrypted_with_old_key_decrypts_with_new_then_old():
    old, new = new_key(), new_key()
    ciphertext = Vault(old).encrypt(TOKEN)
    assert Vault(f"{new},{old}").decrypt(ciphertext) == TOKEN


def test_first_key_encrypts_after_rotation():
    old, new = new_key(), new_key()
    ciphertext = Vault(f"{new},{old}").encrypt(TOKEN)
    assert Vault(new).decrypt(ciphertext) == TOKEN
    with pytest.raises(VaultError):
        Vault(old).decrypt(ciphertext)


def test_rotate_re_encrypts_with_the_first_key():
    old, new = new_key(), new_key()
    ciphertext = Vault(old).encrypt(TOKEN)
    rotated = Vault(f"{new},{old}").rotate(ciphertext)
    assert rotated != ciphertext
    assert Vault(new).decrypt(rotated) == TOKEN
    with pytest.raises(VaultError):  # the old key alone no longer opens it: it can be retired
        Vault(old).decrypt(rotated)


def test_rotate_with_a_key_set_that_cannot_decrypt_raises_vault_error():
    ciphertext = Vault(new_key()).encrypt(TOKEN)
    with pytest.raises(VaultError) as caught:
        Vault(new_key()).rotate(ciphertext)
    assert "BOT_SECRET_KEY" in str(caught.value)


# -- wrong key, damaged data: an error, never plaintext --------------------------------------


def test_wrong_key_raises_vault_error_not_plaintext_or_ciphertext():
    ciphertext = Vault(new_key()).encrypt(TOKEN)
    with pytest.raises(VaultError) as caught:
        Vault(new_key()).decrypt(ciphertext)
    message = str(caught.value)
    assert "BOT_SECRET_KEY" in message
    assert TOKEN not in message and ciphertext not in message


@pytest.mark.parametrize("stored", [
    TOKEN,  # a plaintext token somebody put in the column: never passed through as if decrypted
    "gAAAAAB-not-really-fernet",
    "ciphertext-with-한글",
    "",
])
def test_anything_but_valid_ciphertext_raises_vault_error(stored):
    with pytest.raises(VaultError):
        Vault(new_key()).decrypt(stored)


def test_tampered_ciphertext_raises_vault_error():
    vault = Vault(new_key())
    ciphertext = vault.encrypt(TOKEN)
    raw = bytearray(base64.urlsafe_b64decode(ciphertext))
    raw[-40] ^= 0x01  # flip one bit of the encrypted body
    with pytest.raises(VaultError):
        vault.decrypt(base64.urlsafe_b64encode(bytes(raw)).decode())


def test_unreadable_tells_a_ciphertext_of_another_key_without_raising():
    from cryptography.fernet import Fernet

    from tokens.vault import Vault

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    ciphertext = Vault(old).encrypt("token")
    assert Vault(new).unreadable(ciphertext) is True
    assert Vault(f"{new},{old}").unreadable(ciphertext) is False
    assert Vault(new).unreadable("not a fernet token é") is True
    assert Vault(new).unreadable(None) is False  # nothing stored: nothing to decrypt


def _damaged(ciphertext: str, position: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(ciphertext))
    raw[position] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode()


def test_unreadable_agrees_with_decrypting_on_every_kind_of_token():
    # `unreadable` checks with the standard library what Fernet checks before it decrypts; for each token
    # its answer must be what an actual decryption with cryptography says.
    old, new = new_key(), new_key()
    good = Vault(old).encrypt(TOKEN)
    raw = base64.urlsafe_b64decode(good)
    stored = [good, Vault(new).encrypt(TOKEN), Vault(old).encrypt(""), Vault(old).encrypt("x" * 1000),
              _damaged(good, 0), _damaged(good, 5), _damaged(good, 30), _damaged(good, -40), _damaged(good, -1),
              base64.urlsafe_b64encode(raw[:-16]).decode(), base64.urlsafe_b64encode(raw[:-1]).decode(),
              base64.urlsafe_b64encode(raw[:40]).decode(), good[:-4], good + "AAAA", "gAAAAAB-not-really-fernet",
              TOKEN, "not a fernet token é"]
    for keys in (old, new, f"{new},{old}", f"{old},{new}"):
        vault = Vault(keys)
        fernet = MultiFernet([Fernet(key) for key in keys.split(",")])
        for ciphertext in stored:
            try:
                fernet.decrypt(ciphertext.encode("utf-8"))
                decrypts = True
            except (InvalidToken, ValueError):
                decrypts = False
            assert vault.unreadable(ciphertext) is not decrypts, (keys == old, stored.index(ciphertext))


CHECK_WITHOUT_ENCRYPTING = """
import sys
from tokens.vault import Vault
key, other, ciphertext = sys.argv[1:]
vault = Vault(key + "," + other)
print(vault.unreadable(ciphertext), Vault(other).unreadable(ciphertext), "cryptography" in sys.modules)
vault.decrypt(ciphertext)
print("cryptography" in sys.modules)
"""


def test_building_a_vault_and_checking_tokens_never_imports_cryptography():
    # An idle `run` builds its Vault and checks its stored tokens; cryptography's ~7 MB resident wait for
    # the first token it actually encrypts or decrypts.
    key, other = new_key(), new_key()
    done = subprocess.run([sys.executable, "-c", CHECK_WITHOUT_ENCRYPTING, key, other, Vault(key).encrypt(TOKEN)],
                          capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.split() == ["False", "True", "False", "True"]
