"""Credentials at rest: channel secrets (mailbox passwords today; provider tokens and ERP keys
with their issues) are stored encrypted, never in clear text.

A stored credential is either "" (none set) or `enc:v1:` followed by a Fernet token from
`cryptography` (AES-128-CBC with an HMAC-SHA256 over it: a changed or truncated value fails
to decrypt instead of decrypting to something else). The prefix tells encrypted values from
clear text, and its version leaves room for another format later.

Keys: the current key encrypts; the current and the previous keys decrypt (MultiFernet), so a
rotation can happen while the server runs. Each key is derived with HKDF-SHA256 under a purpose
label from a configured string: `credentials_key`, or `secret_key` when it is unset. So the
credential key is never the bytes that key the session-cookie hashes, and an old `secret_key`
given as a previous credentials key reads what was encrypted under it.

A cipher is built once from the settings (`from_settings`) and handed to whatever needs it
(API, CLI, config sync, pollers, senders, migrations); there is no global one.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.clock import utcnow

if TYPE_CHECKING:
    from core.settings import Settings

PREFIX = "enc:v1:"
# The HKDF purpose label: a key derived for anything else from the same secret differs.
_PURPOSE = b"omnicrm channel credentials v1"

WRONG_KEY_HINT = (
    "it was encrypted with a key omnicrm is not configured with. If credentials_key was "
    "changed, or secret_key while credentials_key is unset (the credentials key is then "
    "derived from it), add the old value to credentials_previous_keys, restart and run "
    "`omnicrm secrets rotate`; otherwise set the password again"
)
CLEAR_TEXT_HINT = "it is stored in clear text: run `omnicrm secrets rotate` to encrypt it"


class CredentialError(Exception):
    """A stored credential cannot be read; the message names it and says what to do."""


def derive_key(secret: str) -> bytes:
    """The Fernet key (urlsafe base64 of 32 bytes) for a configured secret string."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


@dataclass
class Rotation:
    """What re-encrypting stored credentials under the current key found.

    `unreadable` names each value no configured key can decrypt ("mailbox 'support':
    imap_password"); a rotation that found any must change nothing.
    """

    rotated: int = 0
    already_current: int = 0
    unreadable: list[str] = field(default_factory=list)


class CredentialCipher:
    """Encrypts under the current key and decrypts under the current and previous ones."""

    def __init__(self, current: str, previous: Sequence[str] = ()) -> None:
        if not current:
            raise ValueError("the credentials key must not be empty")
        self._current = Fernet(derive_key(current))
        self._any = MultiFernet([self._current, *(Fernet(derive_key(k)) for k in previous)])

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialCipher:
        """`credentials_key` (or, unset, `secret_key`) and `credentials_previous_keys`."""
        key = settings.credentials_key
        current = key.get_secret_value() if key is not None else settings.secret_key
        previous = [old.get_secret_value() for old in settings.credentials_previous_keys]
        return cls(current, previous)

    def encrypt(self, plain: str) -> str:
        """The value to store for `plain`; "" stays "" (no credential set)."""
        if not plain:
            return ""
        # The token's timestamp comes from omnicrm's clock, like every other time.
        now = int(utcnow().timestamp())
        return PREFIX + self._current.encrypt_at_time(plain.encode(), now).decode("ascii")

    def decrypt(self, stored: str, what: str = "a stored credential") -> str:
        """The clear text of a stored value; "" stays "". CredentialError names `what` when
        no configured key reads it, or when it was stored in clear text."""
        if not stored:
            return ""
        if not is_encrypted(stored):
            raise CredentialError(f"cannot use {what}: {CLEAR_TEXT_HINT}")
        try:
            return self._any.decrypt(_token(stored)).decode()
        except (InvalidToken, UnicodeError):
            raise CredentialError(f"cannot decrypt {what}: {WRONG_KEY_HINT}") from None

    def matches(self, stored: str, plain: str) -> bool:
        """Whether a stored value holds `plain` (False if no configured key reads it)."""
        try:
            return self.decrypt(stored) == plain
        except CredentialError:
            return False

    def fingerprint(self, stored: str) -> str:
        """A digest of the clear text, to notice a changed credential without keeping it
        (Fernet's ciphertexts of the same text differ); of the stored value if unreadable."""
        try:
            text = "plain:" + self.decrypt(stored)
        except CredentialError:
            text = "stored:" + stored
        return hashlib.sha256(text.encode()).hexdigest()

    def rotated(self, stored: str, what: str = "a stored credential") -> str | None:
        """`stored` re-encrypted under the current key; None when it needs nothing (empty, or
        under the current key already). Clear text is encrypted. CredentialError when no
        configured key reads it."""
        if not stored:
            return None
        if not is_encrypted(stored):
            return self.encrypt(stored)
        try:
            self._current.decrypt(_token(stored))
            return None
        except (InvalidToken, UnicodeError):
            pass
        try:
            return PREFIX + self._any.rotate(_token(stored)).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise CredentialError(f"cannot decrypt {what}: {WRONG_KEY_HINT}") from None

    def encrypt_fields(self, values: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
        """A copy of `values` with the text values of the keys `names` encrypted."""
        result = dict(values)
        for name in names:
            value = result.get(name)
            if isinstance(value, str):
                result[name] = self.encrypt(value)
        return result

    def decrypt_fields(
        self, values: Mapping[str, Any], names: Iterable[str], owner: str
    ) -> dict[str, Any]:
        """A copy of `values` with the keys `names` decrypted; errors name `owner` and key."""
        result = dict(values)
        for name in names:
            value = result.get(name)
            if isinstance(value, str):
                result[name] = self.decrypt(value, f"{name} of {owner}")
        return result

    def rotate_fields(
        self, values: Mapping[str, Any], names: Iterable[str], owner: str, rotation: Rotation
    ) -> dict[str, str]:
        """The keys `names` of `values` that need re-encrypting, re-encrypted; counted in
        `rotation`, where a value no key reads is listed as "<owner>: <key>"."""
        changed: dict[str, str] = {}
        for name in sorted(names):
            value = values.get(name)
            if not isinstance(value, str) or not value:
                continue
            try:
                new = self.rotated(value)
            except CredentialError:
                rotation.unreadable.append(f"{owner}: {name}")
                continue
            if new is None:
                rotation.already_current += 1
            else:
                rotation.rotated += 1
                changed[name] = new
        return changed


def _token(stored: str) -> bytes:
    return stored[len(PREFIX) :].encode("ascii")
