"""Settings from the environment (prefix ``GREENGRADER_``) with an embedded default.

One flat :class:`Settings` object (``settings.mqtt_host``) composed of one mixin per area,
each in its own module with its fields and their validators: storage (database, broker,
home), MQTT, bridge, payload, privacy, scheduling, sweep, carbon, energy, grading,
Kubernetes, health, metrics and web. docs/configuration.md has one table per area, in
this order.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from greengrader.errors import ConfigError
from greengrader.settings.bridge import BridgeSettings
from greengrader.settings.carbon import CarbonSettings
from greengrader.settings.energy import EnergySettings
from greengrader.settings.grading import GradingSettings
from greengrader.settings.health import HealthSettings
from greengrader.settings.kubernetes import KubernetesSettings
from greengrader.settings.metrics import MetricsSettings
from greengrader.settings.mqtt import MqttSettings
from greengrader.settings.payload import PayloadSettings
from greengrader.settings.privacy import MIN_PSEUDONYM_KEY_CHARS, PrivacySettings, embedded_key
from greengrader.settings.removed import REMOVED_VARIABLES
from greengrader.settings.scheduling import SchedulingSettings
from greengrader.settings.storage import StorageSettings, data_dir
from greengrader.settings.sweep import SweepSettings
from greengrader.settings.web import WebSettings

__all__ = ["AREAS", "MIN_PSEUDONYM_KEY_CHARS", "Settings", "data_dir", "get_settings", "load_settings",
           "unknown_variables"]

log = logging.getLogger(__name__)


class Settings(
    StorageSettings, MqttSettings, BridgeSettings, PayloadSettings, PrivacySettings, SchedulingSettings,
    SweepSettings, CarbonSettings, EnergySettings, GradingSettings, KubernetesSettings, HealthSettings,
    MetricsSettings, WebSettings, BaseSettings,
):
    """All runtime configuration. Every field maps to ``GREENGRADER_<FIELD>``."""

    # BaseSettings comes last, so its configuration (and this one) wins over the mixins'.
    model_config = SettingsConfigDict(env_prefix="GREENGRADER_", extra="ignore")

    @property
    def pseudonym_key_file(self) -> Path:
        """Where the embedded default keeps its generated pseudonym key."""
        return self.home / "pseudonym.key"

    def pseudonym_secret(self) -> bytes:
        """The HMAC key for pseudonyms: the variable, else (embedded default only) a key
        generated once in ``<home>/pseudonym.key`` (see :mod:`greengrader.settings.privacy`)."""
        if self.pseudonym_key is not None:
            return self.pseudonym_key.get_secret_value().encode()
        if not self.embedded:
            raise ConfigError(
                "GREENGRADER_PSEUDONYM_KEY: not set, and pseudonymisation is on: set the same secret on every "
                "bridge (e.g. `openssl rand -hex 32`), or GREENGRADER_PSEUDONYMISE=false"
            )
        return embedded_key(self.pseudonym_key_file)


# The areas, in the order docs/configuration.md lists them.
AREAS: tuple[type[BaseModel], ...] = tuple(base for base in Settings.__bases__ if base is not BaseSettings)


# GREENGRADER_* variables that are not settings (read by the test suite and scripts).
NON_SETTING_VARIABLES = frozenset({"GREENGRADER_SHARED_DIR"})
NON_SETTING_PREFIXES = ("GREENGRADER_TEST_", "GREENGRADER_FAULTS_", "GREENGRADER_FUZZ_", "GREENGRADER_HYPOTHESIS_",
                        "GREENGRADER_SCHEMATHESIS_", "GREENGRADER_K8S_TEST_")


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``GREENGRADER_*`` variable that no setting reads (a typo is silent otherwise)."""
    known = {f"GREENGRADER_{name.upper()}" for name in Settings.model_fields}
    out = []
    for var in sorted(environ):
        if not var.startswith("GREENGRADER_") or var in known or var in NON_SETTING_VARIABLES \
                or var.startswith(NON_SETTING_PREFIXES):
            continue
        if var in REMOVED_VARIABLES:
            out.append(f"variable {var} is ignored: it was removed ({REMOVED_VARIABLES[var]})")
            continue
        close = difflib.get_close_matches(var, known, n=1)
        out.append(f"unknown variable {var} is ignored" + (f" (did you mean {close[0]}?)" if close else ""))
    return out


def load_settings(**overrides: object) -> Settings:
    """Build settings; a validation error becomes a one-line :class:`ConfigError`."""
    for warning in unknown_variables(os.environ):
        log.warning("greengrader: %s", warning)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(f"GREENGRADER_{field.upper()}: {first['msg'].removeprefix('Value error, ')}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return load_settings()
