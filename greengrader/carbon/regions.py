"""The region registry: region name -> carbon zone, location, capacity and queue.

Loaded from a TOML file (``GREENGRADER_REGIONS_FILE``) or the packaged default
(``greengrader/data/regions.toml``). Queue names are ``region-<name>`` unless set.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from greengrader.errors import ConfigError, UnknownRegion


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

    def by_queue(self, queue: str) -> Region:
        for region in self._by_name.values():
            if region.queue_name == queue:
                return region
        raise UnknownRegion(f"no region uses queue {queue!r}")


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
            )
            for name, spec in data.get("regions", {}).items()
        ]
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"GREENGRADER_REGIONS_FILE: invalid regions file {origin}: {exc}") from None
    return RegionRegistry(regions)


def load_regions(path: Path | None = None) -> RegionRegistry:
    """Load the registry from ``path`` or the packaged default."""
    if path is None:
        text = resources.files("greengrader.data").joinpath("regions.toml").read_text()
        return _parse(text, "(packaged default)")
    try:
        return _parse(path.read_text(), str(path))
    except OSError as exc:
        raise ConfigError(f"GREENGRADER_REGIONS_FILE: cannot read {path}: {exc.strerror}") from None
