"""The JSON members of a payload, decoded only if Postgres ``jsonb`` can store them."""

from __future__ import annotations

import json
import math
from typing import Any

from greengrader.errors import PayloadRejected
from greengrader.payload.limits import MAX_JSON_DEPTH


def json_object(raw: bytes, reason: str) -> dict[str, Any]:
    """``raw`` as a storable JSON object; otherwise :class:`PayloadRejected` with ``reason``."""
    try:
        value = json.loads(raw.decode("utf-8-sig"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # ValueError: also the int digit limit
        raise PayloadRejected(reason, f"not valid JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise PayloadRejected(reason, f"top level is {type(value).__name__}, not an object")
    problem = unstorable_json(value)
    if problem:
        raise PayloadRejected(reason, problem)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def unstorable_json(value: Any) -> str | None:
    """Why Postgres ``jsonb`` (or a recursive copy) could not take ``value``; None if it can.

    jsonb refuses ``\u0000``, unpaired surrogates and non-finite numbers; such a value
    passing validation would fail every later insert of its batch.
    """
    # Depth-first over iterators: extra memory is O(depth), not O(nodes).
    stack: list[Any] = [iter((value,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, dict | list):
                if len(stack) > MAX_JSON_DEPTH:
                    return f"nested deeper than {MAX_JSON_DEPTH} levels"
                if isinstance(item, dict) and any(_bad_text(key) for key in item):
                    return "a key holds NUL or an unpaired surrogate"
                stack.append(iter(item.values() if isinstance(item, dict) else item))
                break
            if isinstance(item, str) and _bad_text(item):
                return "a string holds NUL or an unpaired surrogate"
            if isinstance(item, float) and not math.isfinite(item):
                return "a number is not finite"
        else:
            stack.pop()
    return None


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
