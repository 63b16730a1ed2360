"""The region registry: the deployment's map of regions, each with its queue, carbon zone,
location, capacity (worker slots, schedulable nodes) and whether it is enabled.

Loaded from a TOML file (``GREENGRADER_REGIONS_FILE``) or a packaged set: the default
US set (``greengrader/data/regions.toml``) or ``world`` (``regions-world.toml``), chosen by
setting the variable to ``us`` or ``world``. Queue names are ``region-<name>`` unless set.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from greengrader.errors import ConfigError, UnknownRegion

if TYPE_CHECKING:
    from greengrader.settings import Settings


@dataclass(frozen=True)
class Region:
    name: str
    zone: str
    lat: float
    lon: float
    capacity: int = 1
    untainted_nodes: int = 1
    queue: str = ""
    enabled: bool = True
    # The regions file's ``capacity`` when it sets one: an upper bound on live slots.
    cap: int | None = None
    # Live workers serving the region; None where liveness is not tracked (simulation).
    live_workers: int | None = None

    @property
    def queue_name(self) -> str:
        return self.queue or f"region-{self.name}"


class RegionRegistry:
    """An ordered, validated set of regions."""

    def __init__(self, regions: list[Region]) -> None:
        if not regions:
            raise ConfigError("GREENGRADER_REGIONS_FILE: no regions defined")
        self._by_name = {r.name: r for r in regions}
        if len(self._by_name) != len(regions):
            raise ConfigError("GREENGRADER_REGIONS_FILE: duplicate region names")

    def __iter__(self) -> Iterator[Region]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def enabled(self) -> list[Region]:
        return [r for r in self._by_name.values() if r.enabled]

    def get(self, name: str) -> Region:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownRegion(
                f"unknown region {name!r} (known: {', '.join(self._by_name)})"
            ) from None

    def nearest(self, lat: float, lon: float) -> Region:
        """The enabled region closest to (lat, lon) on the great circle (offline GPS lookup)."""
        candidates = self.enabled() or list(self)
        return min(candidates, key=lambda r: haversine_km(lat, lon, r.lat, r.lon))

    def by_queue(self, queue: str) -> Region:
        for region in self._by_name.values():
            if region.queue_name == queue:
                return region
        raise UnknownRegion(f"no region uses queue {queue!r}")


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


PACKAGED = {"us": "regions.toml", "world": "regions-world.toml"}


def _parse(text: str, origin: str) -> RegionRegistry:
    try:
        data = tomllib.loads(text)
        regions = [
            Region(
                name=name,
                zone=str(spec["zone"]),
                lat=float(spec["lat"]),
                lon=float(spec["lon"]),
                capacity=int(spec.get("capacity", 1)),
                untainted_nodes=int(spec.get("untainted_nodes", 1)),
                queue=str(spec.get("queue", "")),
                enabled=bool(spec.get("enabled", True)),
                cap=int(spec["capacity"]) if "capacity" in spec else None,
            )
            for name, spec in data.get("regions", {}).items()
        ]
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"GREENGRADER_REGIONS_FILE: invalid regions file {origin}: {exc}") from None
    return RegionRegistry(regions)


def load_regions(path: Path | None = None) -> RegionRegistry:
    """Load the registry from ``path`` or the packaged default."""
    if path is None or (str(path) in PACKAGED and not path.exists()):
        name = PACKAGED[str(path) if path is not None else "us"]
        text = resources.files("greengrader.data").joinpath(name).read_text()
        return _parse(text, f"(packaged {name})")
    try:
        return _parse(path.read_text(), str(path))
    except OSError as exc:
        raise ConfigError(f"GREENGRADER_REGIONS_FILE: cannot read {path}: {exc.strerror}") from None


def check_region_settings(registry: RegionRegistry, **named: str | None) -> None:
    """Fail with the variable's name when a region setting names no configured region,
    e.g. ``check_region_settings(reg, default_region="us-wset")``."""
    for field, value in named.items():
        if value is not None and value not in registry:
            raise UnknownRegion(
                f"GREENGRADER_{field.upper()}: unknown region {value!r} (known: {', '.join(registry.names)})"
            )


def configured_regions(settings: Settings) -> RegionRegistry:
    """The deployment's registry (``GREENGRADER_REGIONS_FILE`` or the packaged one), checked
    against the settings that name a region."""
    regions = load_regions(settings.regions_file)
    check_region_settings(regions, default_region=settings.default_region, baseline_region=settings.baseline_region)
    return regions
