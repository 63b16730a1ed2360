"""Ingestion: MQTT (or a file) → validated payload in the database → ``schedule``.

:mod:`greengrader.payload` parses and validates (pure), ``privacy`` pseudonymises, ``store``
writes one transaction (``records``: what is prepared and what storing reports), ``ingest``
is the code path shared by the MQTT bridge and the CLI.
The bridge is ``mqtt`` (batches, store, ack, enqueue) over ``session`` (the MQTT connection)
and ``topics``, with ``offload`` running its CPU work in worker processes. ``export`` and
``gradescope_export`` write stored payloads out and build them from a Gradescope export.
"""

from __future__ import annotations
