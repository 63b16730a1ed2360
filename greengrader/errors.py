"""Every exception GreenGrader raises derives from :class:`GreengraderError`.

Third-party errors (SQLAlchemy, requests, docker, paho, kubernetes) are translated into
these at the module that talks to the third party, so callers catch one family.
"""

from __future__ import annotations


class GreengraderError(Exception):
    """Root of all GreenGrader errors."""


class ConfigError(GreengraderError):
    """A setting is missing or invalid; the message names the variable."""


class DatabaseError(GreengraderError):
    """The database is unreachable or refused an operation."""


class InvalidTransition(GreengraderError):
    """A submission status change that the state machine forbids."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"invalid status transition {current!r} -> {target!r}")
        self.current = current
        self.target = target


class NotFound(GreengraderError):
    """A requested object (submission, region, assignment...) does not exist."""


class UnknownRegion(ConfigError):
    """A region name that is not in the region registry."""


class PayloadRejected(GreengraderError):
    """A payload failed validation; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class BrokerUnavailable(GreengraderError):
    """The Celery broker or MQTT broker could not be reached."""


class CarbonDataError(GreengraderError):
    """Carbon-intensity data is missing, malformed or does not cover the window."""


class ProviderError(CarbonDataError):
    """An HTTP carbon provider failed (auth, rate limit, timeout, bad response)."""


class ProviderAuthError(ProviderError):
    """An HTTP carbon provider rejected our credentials (401/403) or none are configured."""


class ProviderRateLimited(ProviderError):
    """An HTTP carbon provider kept answering 429 after our retries."""


class SchedulingError(GreengraderError):
    """No placement could be made (no viable candidate region)."""


class ExecutorError(GreengraderError):
    """The grading executor (Docker, Kubernetes) failed for infrastructure reasons."""


class PlacementFailed(ExecutorError):
    """The job could not start where it was placed (a pod that stays unschedulable, an
    image that cannot be pulled, a tainted node): it is placed again elsewhere."""


class ImageBuildError(ExecutorError):
    """An assignment image could not be built; ``log`` holds the build output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class InvalidWorkerFacts(PayloadRejected):
    """A worker registration (Celery start-up or MQTT ``workers/register``) is unusable."""


class SimulationError(GreengraderError):
    """A simulation cannot run (no overlap between the trace and the carbon data, bad input)."""


class TraceError(SimulationError):
    """A submission trace (CSV, database, arrival model) is missing or malformed."""


class InvalidResults(GreengraderError):
    """An autograder's results.json does not follow the Gradescope format."""


class CasError(SchedulingError):
    """The carbon-aware scheduler (CAS) service is unreachable or answered garbage."""


class AccountError(GreengraderError):
    """A dashboard account operation failed (unknown user, duplicate e-mail, bad role)."""
