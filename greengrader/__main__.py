"""``python -m greengrader`` runs the CLI."""

from __future__ import annotations

from greengrader.cli import main

main()
