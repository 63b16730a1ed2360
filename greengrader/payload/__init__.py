"""The payload format: the zip a Gradescope hook publishes (metadata, limits, files).

Used by the bridge (ingest), grading (what to run), export and import alike.
"""
