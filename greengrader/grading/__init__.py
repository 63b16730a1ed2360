"""Grading: run one submission's autograder and store what it scored.

``service`` claims a queued job and records its Result, ``images`` builds the
assignment's image, ``results`` reads Gradescope's ``results.json``, and ``executors``
holds the backends that run the container (Docker, a Kubernetes Job).
"""
