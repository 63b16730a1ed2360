"""Run the schemathesis 3.x CLI on a current Hypothesis.

schemathesis 3.x generates JSON bodies with hypothesis-jsonschema 0.23.1 (its latest
release), which calls ``many.more()``; newer Hypothesis replaced that internal with an
iterator (``with many(...) as elements: for _ in elements``), so every body-bearing
operation fails with "'many' object has no attribute 'more'" before a request is sent
(schemathesis fixed this in 4.x, PR #2832). ``more`` is put back as a thin adapter over the
iterator, in the schemathesis process only:

    python -m tests.integration.schemathesis_compat run http://127.0.0.1:PORT/openapi.json ...
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    from hypothesis.internal.conjecture import utils

    if hasattr(utils.many, "more"):
        return

    def more(self: Any) -> bool:
        """Old protocol: True while another element should be drawn."""
        elements = self.__dict__.get("_compat_elements")
        if elements is None:
            self.__enter__()
            elements = self._compat_elements = iter(self)
        try:
            next(elements)
        except StopIteration:
            self.__exit__(None, None, None)
            return False
        return True

    utils.many.more = more


def main() -> None:
    install()
    from schemathesis.cli import schemathesis

    schemathesis(prog_name="st")


if __name__ == "__main__":
    main()
