"""Carbon intensity: providers (data sets, HTTP APIs, embedded averages), regions, energy.

``get_provider(name, settings)`` resolves a provider by short name, a comma-separated
fallback chain (``"dataset,embedded"``) or a dotted path ``"pkg.module:Class"``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from greengrader.carbon.base import CarbonProvider, IntensitySeries, Signal
from greengrader.errors import ConfigError

if TYPE_CHECKING:
    from greengrader.settings import Settings

__all__ = ["PROVIDERS", "CarbonProvider", "IntensitySeries", "Signal", "get_provider"]

# Short name -> "module:Class". Imported lazily so unused providers cost nothing.
PROVIDERS: dict[str, str] = {
    "embedded": "greengrader.carbon.embedded:EmbeddedProvider",
    "dataset": "greengrader.carbon.dataset:DatasetProvider",
    "watttime": "greengrader.carbon.watttime:WattTimeProvider",
    "electricitymaps": "greengrader.carbon.electricitymaps:ElectricityMapsProvider",
    "carbon-aware-sdk": "greengrader.carbon.carbon_aware_sdk:CarbonAwareSdkProvider",
}


def _load_class(dotted: str) -> type:
    module_name, _, attr = dotted.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            f"GREENGRADER_CARBON_SOURCE: {dotted!r} is neither a provider name "
            f"({', '.join(PROVIDERS)}) nor a 'pkg.module:Class' path"
        )
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"GREENGRADER_CARBON_SOURCE: cannot load {dotted!r}: {exc}") from None
    if not isinstance(obj, type):
        raise ConfigError(f"GREENGRADER_CARBON_SOURCE: {dotted!r} is not a class")
    return obj


def _build_one(name: str, settings: Settings) -> CarbonProvider:
    cls = _load_class(PROVIDERS.get(name, name))
    factory = getattr(cls, "from_settings", None)
    provider = factory(settings) if callable(factory) else cls()
    if not isinstance(provider, CarbonProvider):
        raise ConfigError(f"GREENGRADER_CARBON_SOURCE: {name!r} does not implement CarbonProvider")
    return provider


AUTO = "auto"


def resolve_auto(settings: Settings) -> str:
    """What ``auto`` means here: imported data sets first when there are any, else embedded."""
    from greengrader.carbon.store import CarbonStore
    from greengrader.errors import CarbonDataError

    store = CarbonStore(settings.home, settings.carbon_data_dir, factor=settings.carbon_emission_factor)
    try:
        has_data = bool(store.files())
    except CarbonDataError:
        has_data = True  # a broken manifest should be reported by the dataset provider, not hidden
    return "dataset,embedded" if has_data else "embedded"


def get_provider(name_or_dotted_path: str, settings: Settings) -> CarbonProvider:
    """Build the provider (or fallback chain) named by ``name_or_dotted_path``.

    ``auto`` (the default) uses the data sets imported with ``greengrader carbon import``
    (or found under ``GREENGRADER_CARBON_DATA_DIR``) when there are any, falling back to
    the embedded data for zones they do not cover.
    """
    if name_or_dotted_path.strip() == AUTO:
        name_or_dotted_path = resolve_auto(settings)
    names = [n.strip() for n in name_or_dotted_path.split(",") if n.strip()]
    if not names:
        raise ConfigError("GREENGRADER_CARBON_SOURCE: empty provider name")
    providers = [_build_one(n, settings) for n in names]
    if len(providers) == 1:
        return providers[0]
    from greengrader.carbon.fallback import FallbackProvider

    return FallbackProvider(providers)
