"""Validation of training config YAML, shared by both config families.

:func:`read_config_yaml` reads the file; :class:`ConfigReader` reads typed values out
of the parsed mapping and raises :class:`ConfigError` naming the file, the key path
(``optimizer.learning_rate``) and the fix, so both :mod:`wmhkit.train.config`
(segmentation) and :mod:`wmhkit.train.volume_config` (GP-Unet) report bad configs the
same way. Every getter takes ``(item, at, key, default)``: the mapping, the path of the
section it sits in (``""`` at the top), the key and its default. Both configs are
frozen dataclasses whose fields are the YAML keys, sections nested as in the file
(:class:`RecordedConfig`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import yaml

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


def read_config_yaml(path: Path, examples: str) -> Any:
    """The parsed YAML of the config file ``path``; ``examples`` names shipped configs for the error's fix.

    Raises
    ------
    ConfigError
        For a missing file or invalid YAML.
    """
    if not path.is_file():
        raise ConfigError(path, "config file does not exist", f"give a YAML file or a shipped config name ({examples}, ...)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"not valid YAML ({str(exc).splitlines()[0]})", "fix the syntax") from exc


class RecordedConfig:
    """The plain record and the identity of a frozen config dataclass with a ``source`` field (its file)."""

    #: Keys that change how a run executes but not what it computes (left out of :meth:`identity`).
    execution_keys: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML types, nested as in the file (written to ``RUN/config.yaml``)."""
        record = plain(dataclasses.asdict(self))  # type: ignore[call-overload]
        record.pop("source")
        return record

    def identity(self) -> dict[str, Any]:
        """:meth:`to_dict` without the execution-only keys: the settings that determine the trained weights
        (input of the run identity, :func:`wmhkit.train.run_folder.run_identity`)."""
        return {key: value for key, value in self.to_dict().items() if key not in self.execution_keys}


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

    def top(self, raw: Any, config_class: type) -> dict[str, Any]:
        """The top mapping of a config, with only the fields of ``config_class`` (less ``source``) as keys."""
        top = self.mapping(raw, "")
        self.known(top, "", {f.name for f in dataclasses.fields(config_class)} - {"source"})
        return top

    def known(self, item: Mapping[str, Any], at: str, allowed: set[str]) -> None:
        unknown = sorted(str(k) for k in item if k not in allowed)
        if unknown:
            self.fail(_key(at, unknown[0]), "unknown key", f"use one of {sorted(allowed)}")

    def section(self, top: Mapping[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
        """The sub-mapping ``top[key]`` (empty when absent or null), with only ``allowed`` keys."""
        section = self.mapping(top.get(key) or {}, key)
        self.known(section, key, allowed)
        return section

    def dataclass_section(self, top: Mapping[str, Any], key: str, cls: type, *, prefix: str = "",
                          defaults: Mapping[str, Any] | None = None) -> Any:
        """The section ``top[key]`` (absent or null: every default) as a ``cls`` dataclass.

        A field is read by the type of its default (bool, int, float, tuple of ints; None: an optional
        string), within the
        ``minimum`` / ``maximum`` (``open``: ends excluded) of its metadata (numbers: ``minimum`` 0 unless
        given), or as one of its metadata's ``choices``; ``defaults`` replace the class's defaults.
        """
        at = f"{prefix}{key}"
        raw = top.get(key)
        section = self.mapping({} if raw is None else raw, at)
        self.known(section, at, {f.name for f in dataclasses.fields(cls)})
        values = dict(defaults or {})
        for f in dataclasses.fields(cls):
            if f.name not in section:
                continue
            default, rules = values.get(f.name, f.default), f.metadata
            if "choices" in rules:
                values[f.name] = self.choice(section, at, f.name, rules["choices"], default)
            elif isinstance(default, bool):
                values[f.name] = self.boolean(section, at, f.name, default)
            elif isinstance(default, int):
                values[f.name] = self.integer(section, at, f.name, default, minimum=rules.get("minimum", 0),
                                              maximum=rules.get("maximum"))
            elif isinstance(default, float):
                values[f.name] = self.number(section, at, f.name, default, minimum=rules.get("minimum", 0.0),
                                             maximum=rules.get("maximum"), open_interval=rules.get("open", False))
            elif isinstance(default, tuple):
                values[f.name] = tuple(self.integer_list(section, at, f.name, len(default)))
            elif default is None:
                values[f.name] = self.optional_str(section, at, f.name)
        return cls(**values)

    def string(self, item: Mapping[str, Any], at: str, key: str, default: str | None) -> str:
        value = item.get(key, default)
        if not isinstance(value, str) or not value:
            self.fail(_key(at, key), f"must be a non-empty string, got {value!r}", "give a name")
        return value

    def optional_str(self, item: Mapping[str, Any], at: str, key: str) -> str | None:
        value = item.get(key)
        return None if value is None else self.string(item, at, key, None)

    def path(self, item: Mapping[str, Any], at: str, key: str) -> str | None:
        """An optional file or folder path; a relative one is taken relative to the config file."""
        value = self.optional_str(item, at, key)
        if value is not None and self.where is not None and not Path(value).is_absolute():
            value = str(self.where.parent / value)
        return value

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
