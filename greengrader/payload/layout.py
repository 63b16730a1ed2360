"""Where a payload keeps its members: the two layouts the ``run_autograder`` hooks produce.

Both are accepted, as the hooks in the wild produce both::

    nested: gradescope_data/hostname.txt, gradescope_data/autograder/{source,submission,...}
    flat:   gradescope_data/hostname.txt, gradescope_data/{source,submission,...}
"""

from __future__ import annotations

ROOT = "gradescope_data/"
NESTED = ROOT + "autograder/"
HOSTNAME = ROOT + "hostname.txt"
# Relative to the layout's base (NESTED or ROOT).
METADATA = "submission_metadata.json"
RESULTS = "results/results.json"
SOURCE = "source/"
SUBMISSION = "submission/"
