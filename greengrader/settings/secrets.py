"""Secrets given either as a variable or as a file (Docker and Kubernetes secrets)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr


def secret_value(value: SecretStr | None, path: Path | None) -> str | None:
    """The variable's value, else the file's first line; None when neither is set."""
    if value is not None:
        return value.get_secret_value()
    if path is not None:
        return path.read_text().strip()
    return None
