"""Validation of training config YAML, shared by both config families.

:class:`ConfigReader` reads typed values out of a parsed YAML mapping and raises
:class:`ConfigError` naming the file, the key path (``optimizer.learning_rate``) and
the fix, so both :mod:`wmhkit.train.config` (segmentation) and
:mod:`wmhkit.train.volume_config` (GP-Unet) report bad configs the same way.
Every getter takes ``(item, at, key, default)``: the mapping, the path of the section
it sits in (``""`` at the top), the key and its default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from wmhkit.errors import InputError


class ConfigError(InputError):
    """A training config key is missing, unknown or has an invalid value."""


def plain(value: Any) -> Any:
    """``value`` with tuples as lists, mapping keys as strings and paths as strings (YAML/JSON-ready).

    >>> plain({"shape": (1, 2), 3: Path("a")})
    {'shape': [1, 2], '3': 'a'}
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _key(at: str, key: str) -> str:
    return f"{at}.{key}" if at else key


def is_whole(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """True for a finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ConfigReader:
    """Typed getters that raise :class:`ConfigError` naming the key path."""

    def __init__(self, where: Path | None) -> None:
        self.where = where

    def fail(self, key: str, reason: str, fix: str) -> NoReturn:
        raise ConfigError(self.where, f"{key}: {reason}", fix)

    def mapping(self, raw: Any, at: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.fail(at or "config", f"must be a mapping of keys, got {type(raw).__name__}", "write key: value lines")
        return raw

    def known(self, item: Mapping[str, Any], at: str, allowed: set[str]) -> None:
        unknown = sorted(str(k) for k in item if k not in allowed)
        if unknown:
            self.fail(_key(at, unknown[0]), "unknown key", f"use one of {sorted(allowed)}")

    def section(self, top: Mapping[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
        """The sub-mapping ``top[key]`` (empty when absent or null), with only ``allowed`` keys."""
        section = self.mapping(top.get(key) or {}, key)
        self.known(section, key, allowed)
        return section

    def string(self, item: Mapping[str, Any], at: str, key: str, default: str | None) -> str:
        value = item.get(key, default)
        if not isinstance(value, str) or not value:
            self.fail(_key(at, key), f"must be a non-empty string, got {value!r}", "give a name")
        return value

    def optional_str(self, item: Mapping[str, Any], at: str, key: str) -> str | None:
        value = item.get(key)
        return None if value is None else self.string(item, at, key, None)

    def choice(self, item: Mapping[str, Any], at: str, key: str, options: Sequence[str], default: str | None) -> str:
        value = item.get(key, default)
        if value not in options:
            self.fail(_key(at, key), f"must be one of {list(options)}, got {value!r}", f"use one of {list(options)}")
        return value

    def boolean(self, item: Mapping[str, Any], at: str, key: str, default: bool) -> bool:
        value = item.get(key, default)
        if not isinstance(value, bool):
            self.fail(_key(at, key), f"must be true or false, got {value!r}", "write true or false")
        return value

    def integer(self, item: Mapping[str, Any], at: str, key: str, default: int, *, minimum: int,
                maximum: int | None = None) -> int:
        value = item.get(key, default)
        if not is_whole(value) or value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum}" + (f" to {maximum}" if maximum is not None else "")
            self.fail(_key(at, key), f"must be a whole number {bound}, got {value!r}", "fix the number")
        return int(value)

    def number(self, item: Mapping[str, Any], at: str, key: str, default: float, *, minimum: float,
               maximum: float | None = None, open_interval: bool = False) -> float:
        """A finite number in ``[minimum, maximum]`` (both ends open with ``open_interval``)."""
        value = item.get(key, default)
        ok = is_finite_number(value)
        if ok:
            value = float(value)
            low_ok = value > minimum if open_interval else value >= minimum
            high_ok = maximum is None or (value < maximum if open_interval else value <= maximum)
            ok = low_ok and high_ok
        if not ok:
            bounds = f"{'(' if open_interval else '['}{minimum}, {maximum if maximum is not None else '∞'}" + (
                ")" if open_interval or maximum is None else "]")
            self.fail(_key(at, key), f"must be a number in {bounds}, got {value!r}", "fix the number")
        return value

    def string_list(self, item: Mapping[str, Any], at: str, key: str, default: list[str]) -> list[str]:
        value = item.get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(_key(at, key), f"must be a list of names, got {value!r}", "write [a, b]")
        return value

    def integer_list(self, item: Mapping[str, Any], at: str, key: str, length: int) -> list[int]:
        value = item.get(key)
        if (not isinstance(value, list) or len(value) != length
                or not all(is_whole(v) and v > 0 for v in value)):
            self.fail(_key(at, key), f"must be a list of {length} positive whole numbers, got {value!r}",
                      f"write e.g. [{', '.join(['256'] * length)}]")
        return value
