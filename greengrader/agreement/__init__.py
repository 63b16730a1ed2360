"""Agreement with Gradescope: per-test comparison (compare.py) and evidence that a test is nondeterministic (evidence.py)."""
