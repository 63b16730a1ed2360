"""The HTTP edge shared by the API providers: timeouts, retries, TTL cache, error translation.

Retried (with exponential backoff, or the server's ``Retry-After`` when it sends one):
timeouts, connection errors, 429 and 5xx. Not retried: 401/403 (:class:`ProviderAuthError`),
other 4xx and malformed JSON. Everything leaves as a :class:`ProviderError` subclass so a
:class:`~greengrader.carbon.fallback.FallbackProvider` moves on to the next provider.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from greengrader.errors import ProviderAuthError, ProviderError, ProviderRateLimited

log = logging.getLogger(__name__)
Params = Mapping[str, str | int | float | list[str]]


class _Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class HttpClient:
    """JSON over HTTP for one provider (``name`` appears in every error)."""

    def __init__(
        self, name: str, base_url: str, *, timeout_s: float = 10.0, retries: int = 3,
        cache_ttl_s: float = 300.0, max_retry_wait_s: float = 30.0, session: requests.Session | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.cache_ttl_s = cache_ttl_s
        self.max_retry_wait_s = max_retry_wait_s
        self.session = session or requests.Session()
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_wait_s)
        return float(wait_exponential(multiplier=0.25, max=self.max_retry_wait_s)(state))

    def request_json(
        self, method: str, path: str, *, params: Params | None = None, headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None, json_body: Any = None, cache: bool = True,
    ) -> Any:
        """Send the request (retrying transient failures) and return the decoded JSON."""
        url = self.base_url + path
        key = json.dumps([method, url, params, json_body], sort_keys=True, default=str)
        if cache and self.cache_ttl_s > 0:
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.cache_ttl_s:
                return hit[1]
        retrying = Retrying(
            stop=stop_after_attempt(self.retries), wait=self._wait,
            retry=retry_if_exception_type(_Transient), reraise=True,
        )
        try:
            result = retrying(self._once, method, url, params, headers, auth, json_body)
        except _Transient as exc:
            if exc.status == 429:
                raise ProviderRateLimited(f"{self.name}: rate limited (429) after {self.retries} attempts") from None
            raise ProviderError(f"{self.name}: {exc} (after {self.retries} attempts)") from None
        if cache and self.cache_ttl_s > 0:
            with self._lock:
                self._cache[key] = (time.monotonic(), result)
        return result

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request_json("GET", path, **kwargs)

    def _once(
        self, method: str, url: str, params: Params | None, headers: Mapping[str, str] | None,
        auth: tuple[str, str] | None, json_body: Any,
    ) -> Any:
        try:
            resp = self.session.request(
                method, url, params=params, headers=dict(headers or {}), auth=auth, json=json_body,
                timeout=self.timeout_s,
            )
        except requests.Timeout:
            raise _Transient(f"timed out after {self.timeout_s:g} s ({url})") from None
        except requests.ConnectionError as exc:
            raise _Transient(f"cannot connect to {url}: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise ProviderError(f"{self.name}: request to {url} failed: {exc}") from None
        if resp.status_code in (401, 403):
            raise ProviderAuthError(f"{self.name}: credentials rejected ({resp.status_code}) by {url}")
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Transient(
                f"HTTP {resp.status_code} from {url}", _retry_after(resp.headers.get("Retry-After")), resp.status_code
            )
        if resp.status_code >= 400:
            raise ProviderError(f"{self.name}: HTTP {resp.status_code} from {url}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError:
            raise ProviderError(f"{self.name}: malformed JSON from {url}: {resp.text[:120]!r}") from None


def require(doc: Any, *keys: str, provider: str) -> Any:
    """``doc[k1][k2]...`` or a :class:`ProviderError` naming the missing field."""
    node = doc
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            raise ProviderError(f"{provider}: unexpected response (no {'.'.join(keys)!r}): {str(doc)[:160]}")
        node = node[k]
    return node
