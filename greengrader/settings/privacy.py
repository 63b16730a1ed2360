"""Privacy: pseudonymisation of student identities and the key it is keyed with.

There is no built-in key: a public one would let anyone recover names and emails by
hashing a list of candidates. The embedded default generates a random key once
(:func:`embedded_key`); a deployment with a database server must set
``GREENGRADER_PSEUDONYM_KEY``, the same on every bridge.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import BaseModel, SecretStr, field_validator

MIN_PSEUDONYM_KEY_CHARS = 16
# Keys that were ever published (the old built-in default).
_PUBLIC_KEYS = frozenset({"greengrader-default-pseudonym-key"})


class PrivacySettings(BaseModel):
    pseudonymise: bool = True
    pseudonym_key: SecretStr | None = None

    @field_validator("pseudonym_key")
    @classmethod
    def _check_pseudonym_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if "CHANGE_ME" in secret.upper() or secret in _PUBLIC_KEYS:
            raise ValueError("still the placeholder from the example: set a secret (e.g. `openssl rand -hex 32`)")
        if len(secret) < MIN_PSEUDONYM_KEY_CHARS:
            raise ValueError(f"too short to resist a dictionary attack: use at least {MIN_PSEUDONYM_KEY_CHARS} "
                             "random characters (e.g. `openssl rand -hex 32`)")
        return value


def embedded_key(path: Path) -> bytes:
    """The key at ``path``, generated there (mode 0600) by the first process that needs it."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key
