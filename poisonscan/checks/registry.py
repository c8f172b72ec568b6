"""Registry of check families: name -> class, imported only when a scan needs it."""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from ..errors import ConfigError
from .base import Check

#: Family name -> "module:Class". Order is the order of columns in ``scores.parquet``.
REGISTRY: dict[str, str] = {
    "bounds": "poisonscan.checks.bounds:BoundsCheck",
    "outliers": "poisonscan.checks.outliers:OutlierCheck",
    "labels": "poisonscan.checks.labels:LabelsCheck",
    "duplicates": "poisonscan.checks.duplicates:DuplicatesCheck",
    "backdoor": "poisonscan.checks.backdoor:BackdoorCheck",
}
#: Families run when the user does not choose.
DEFAULT_FAMILIES: tuple[str, ...] = ("bounds", "outliers", "labels", "duplicates", "backdoor")


def check_class(name: str) -> type[Check]:
    """The class registered under ``name``."""
    try:
        module, cls = REGISTRY[name].split(":")
    except KeyError:
        raise ConfigError(f"unknown check family {name!r} (known: {', '.join(REGISTRY)})") from None
    return getattr(importlib.import_module(module), cls)


def build_checks(families: tuple[str, ...] | None,
                 params: Mapping[str, Mapping[str, Any]], *,
                 has_label: bool) -> tuple[list[Check], dict[str, str]]:
    """Instantiate the chosen families with their config tables.

    Returns
    -------
    checks : list of Check
        Unfitted checks, in registry order.
    skipped : dict of str to str
        Families that cannot run on this input, with the reason.

    Raises
    ------
    ConfigError
        An unknown family, an unknown parameter or a bad value.
    """
    chosen = list(DEFAULT_FAMILIES if families is None else families)
    for name in list(chosen) + list(params):
        check_class(name)  # raises on unknown names
    checks, skipped = [], {}
    for name in REGISTRY:
        if name not in chosen:
            continue
        cls = check_class(name)
        if cls.requires_label and not has_label:
            skipped[name] = "no label column given"
            continue
        check = cls(**params.get(name, {}))
        check._validate_params()
        checks.append(check)
    if not checks:
        raise ConfigError(f"checks: none of {', '.join(chosen)} can run: "
                          + "; ".join(f"{name}: {why}" for name, why in skipped.items()))
    return checks, skipped
