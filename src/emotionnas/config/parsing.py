"""YAML values into typed config dataclasses: unknown keys refused, each value coerced to its
field's type (one-line ConfigError naming the source and the field)."""
from __future__ import annotations

import dataclasses
from dataclasses import fields

from emotionnas.errors import ConfigError


def _build(cls, data: dict, source: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in {cls.__name__}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if name in getattr(cls, "_free_fields", ()):
            kwargs[name] = value
        elif dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{source}:{name}")
        else:
            kwargs[name] = _coerce(value, default, f"{source}:{name}")
    return cls(**kwargs)


def _coerce(value, default, where: str):
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    for typ in (int, float):
        if isinstance(default, typ):
            try:
                out = typ(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}") from None
            if typ is int and float(value) != out:
                raise ConfigError(f"{where}: expected an integer, got {value!r}")
            return out
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if isinstance(default, dict) and not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if default:
            return [_coerce(v, default[0], f"{where}[{i}]") for i, v in enumerate(value)]
    return value
