"""Celery tasks. Each task is a thin wrapper: the work lives in plain functions that take a
:class:`~greengrader.context.Context`, so it can be tested without a worker."""
