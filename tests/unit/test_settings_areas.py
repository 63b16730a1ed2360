"""One mixin per area composes the flat ``Settings``: fields, validators, environment, removed variables."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import BaseModel, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from greengrader.bridge.offload import PREPARE_WORKERS
from greengrader.errors import ConfigError
from greengrader.grading.executors.docker import DISK_POLL_S
from greengrader.ops.doctor import Verdict, check_removed_variables
from greengrader.scheduling.placement import FORECAST_CACHE_S
from greengrader.settings import AREAS, Settings, load_settings, unknown_variables
from greengrader.settings.removed import REMOVED_VARIABLES


def test_every_field_belongs_to_exactly_one_area() -> None:
    per_area = Counter(name for area in AREAS for name in area.model_fields)
    assert [name for name, n in per_area.items() if n > 1] == []
    assert set(per_area) == set(Settings.model_fields)
    assert all(issubclass(Settings, area) for area in AREAS)


def test_mixin_fields_read_the_environment_with_their_constraints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENGRADER_MQTT_HOST", "broker.example")
    monkeypatch.setenv("GREENGRADER_K8S_TOLERATIONS", '[{"key": "k", "operator": "Exists"}]')
    s = load_settings()
    assert s.mqtt_host == "broker.example"
    assert s.k8s_tolerations == [{"key": "k", "operator": "Exists"}]
    monkeypatch.setenv("GREENGRADER_WEB_PORT", "0")
    with pytest.raises(ConfigError, match=r"^GREENGRADER_WEB_PORT: "):
        load_settings()


def test_mixin_validators_run_on_the_composed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENGRADER_BROKER_URL", "kafka://nope")
    with pytest.raises(ConfigError, match=r"^GREENGRADER_BROKER_URL: unsupported broker URL scheme"):
        load_settings()
    monkeypatch.delenv("GREENGRADER_BROKER_URL")
    monkeypatch.setenv("GREENGRADER_PSEUDONYM_KEY", "CHANGE_ME")
    with pytest.raises(ConfigError, match=r"^GREENGRADER_PSEUDONYM_KEY: still the placeholder"):
        load_settings()


class _Window(BaseModel):
    window_lo: int = 0
    window_hi: int = 10

    @model_validator(mode="after")
    def _ordered(self) -> _Window:
        if self.window_lo > self.window_hi:
            raise ValueError("lo above hi")
        return self


class _Probe(_Window, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROBE_")


def test_a_mixin_model_validator_runs_on_the_composition(monkeypatch: pytest.MonkeyPatch) -> None:
    # No area needs one yet; this is the mechanism an area would rely on.
    monkeypatch.setenv("PROBE_WINDOW_LO", "11")
    with pytest.raises(ValidationError, match="lo above hi"):
        _Probe()
    monkeypatch.setenv("PROBE_WINDOW_HI", "12")
    assert (_Probe().window_lo, _Probe().window_hi) == (11, 12)


def test_the_settings_configuration_wins_over_the_mixins() -> None:
    assert Settings.model_config["env_prefix"] == "GREENGRADER_"
    assert Settings.model_config["extra"] == "ignore"
    assert Settings.model_config["validate_default"] is True  # from BaseSettings, last base


def test_removed_variables_say_what_replaced_them(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"GREENGRADER_FORECAST_CACHE_S": "5", "GREENGRADER_HOME": "/tmp"}
    assert unknown_variables(environ) == [
        f"variable GREENGRADER_FORECAST_CACHE_S is ignored: it was removed ({REMOVED_VARIABLES['GREENGRADER_FORECAST_CACHE_S']})"
    ]
    assert not set(REMOVED_VARIABLES) & {f"GREENGRADER_{name.upper()}" for name in Settings.model_fields}
    findings = check_removed_variables(environ)
    assert [(f.verdict, f.fix) for f in findings] == [(Verdict.WARN, "unset GREENGRADER_FORECAST_CACHE_S")]
    assert check_removed_variables({"GREENGRADER_HOME": "/tmp"}) == []


def test_the_former_settings_keep_their_defaults_as_constants() -> None:
    assert (FORECAST_CACHE_S, DISK_POLL_S, PREPARE_WORKERS) == (60.0, 1.0, 1)
