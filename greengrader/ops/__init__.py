"""Operations: what a sysadmin watches and runs.

Health checks and ``doctor``, Prometheus metrics and the exporter, observations
(carbon totals, queue depths), the beat's liveness, the worker registry and retention.
"""
