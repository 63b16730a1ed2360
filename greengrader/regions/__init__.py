"""The deployment's map of regions: their queues, carbon zones, capacity and hardware.

Read by the context, ``celeryconfig``, placement and health alike, so it belongs to no
one of them.
"""
