"""The embedded demo: built-in example assignments graded end to end on one machine."""
