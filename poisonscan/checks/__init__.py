"""Check families: one module each, one contract (:mod:`poisonscan.checks.base`)."""

from .base import Check, CheckScores
from .registry import DEFAULT_FAMILIES, REGISTRY, build_checks, check_class

__all__ = ["Check", "CheckScores", "DEFAULT_FAMILIES", "REGISTRY", "build_checks", "check_class"]
