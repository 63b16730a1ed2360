from __future__ import annotations

from pathlib import Path

import pytest

from greengrader.errors import ConfigError, UnknownRegion
from greengrader.regions.registry import load_regions
from greengrader.settings import load_settings


def test_embedded_default_uses_sqlite_in_home(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path)
    assert s.embedded
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'greengrader.db'}"
    assert s.effective_broker_url == "filesystem://"
    assert s.broker_dir == tmp_path / "broker"


def test_bad_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^GREENGRADER_DATABASE_URL: .*unsupported"):
        load_settings(database_url="mysql://nope")


def test_bad_port_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^GREENGRADER_MQTT_PORT"):
        load_settings(mqtt_port=70000)


def test_default_regions_have_queues() -> None:
    regions = load_regions()
    assert "us-west" in regions
    assert regions.get("us-west").queue_name == "region-us-west"
    with pytest.raises(UnknownRegion, match="unknown region 'us-wset'"):
        regions.get("us-wset")


def test_invalid_regions_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "regions.toml"
    bad.write_text("[regions.x]\nlat = 1\n")
    with pytest.raises(ConfigError, match="GREENGRADER_REGIONS_FILE"):
        load_regions(bad)


def test_unknown_default_region_names_the_variable(tmp_path: Path) -> None:
    from greengrader.context import Context

    with pytest.raises(UnknownRegion, match=r"^GREENGRADER_DEFAULT_REGION: unknown region 'us-wset'"):
        Context.from_settings(load_settings(home=tmp_path, default_region="us-wset"))
