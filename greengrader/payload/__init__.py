"""The payload format: the zip a Gradescope hook publishes (metadata, limits, files).

Used by the bridge (ingest), grading (what to run), export and import alike. ``parse``
composes the rest: ``layout`` (where members live), ``limits`` (caps), ``archive`` (zip
checks and metered reads), ``storable`` (JSON members), ``metadata`` (Gradescope's fields),
``digest`` (content hashes) and ``reasons`` (why a payload is rejected).
"""
