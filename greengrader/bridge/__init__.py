"""Ingestion: MQTT (or a file) → validated payload in the database → ``schedule``.

``payload`` parses and validates (pure), ``privacy`` pseudonymises, ``store`` writes one
transaction, ``ingest`` is the code path shared by the MQTT bridge (``mqtt``) and the CLI.
"""

from __future__ import annotations
