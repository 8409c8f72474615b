"""Typed configuration: dataclasses, loaded from YAML, overridden from the command line with `--key value`.

Nested sections are addressed with dots (`--train.lr 5e-5`); a key that is unique across sections may be given
bare (`--lr 5e-5`). `--key=value` and `--key value` are read as argparse reads them, dashes in the key only.
Command-line values stay text until the field's type converts them: a string field keeps `on` or `010` as typed
(YAML would turn them into True and 8). Unknown keys and values of the wrong type are errors that name the key.

A field typed `number | Section` (`lr`: one number or one per component) takes either; `--lr.vision 5e-6` sets one
part, and a mapping given where the default, the YAML or an earlier override has a number keeps that number as
its `all` (what the parts not named get).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import yaml


class ConfigError(ValueError):
    pass


# How a command line sets an optional field to None.
NULLS = ("null", "none", "~")


def _structured(annotation) -> bool:
    """Fields whose command-line value is written as YAML (`--stages '[{recipe: lora}]'`): no other text form."""
    args = typing.get_args(annotation)
    return (dataclasses.is_dataclass(annotation) or typing.get_origin(annotation) is dict
            or (typing.get_origin(annotation) in (list, tuple) and bool(args) and dataclasses.is_dataclass(args[0])))


def _convert(value, annotation, key: str):
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in NULLS)):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[-1] if isinstance(value, dict) else errors[0])  # a mapping meant the section
    if isinstance(value, str) and _structured(annotation):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{key}: not valid YAML: {value!r}") from exc
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, prefix=f"{key}.")
    if origin in (list, tuple):
        items = value if isinstance(value, list) else [v for v in str(value).split(",") if v]
        return [_convert(v, args[0] if args else str, key) for v in items]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes", "on"):
            return True
        if str(value).lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation in (int, float):
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (annotation is int and not number.is_integer()):
            raise ConfigError(f"{key}: expected {'an integer' if annotation is int else 'a number'}, got {value!r}")
        return annotation(number)
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _is_number(value) -> bool:
    """A number, or text that reads as one (YAML 1.1 reads `1e-4` as a string)."""
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _over_number(number, mapping: dict) -> dict:
    return {"all": number, **mapping}


def from_dict(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]!r}; known keys: {', '.join(sorted(fields))}")
    values = {}
    for k, v in data.items():
        if isinstance(v, dict) and _is_number(fields[k].default):
            v = _over_number(fields[k].default, v)
        elif isinstance(v, dict) and "all" not in v and _is_number_or_section(hints[k]):
            # a default with parts of its own (the demo's lr) keeps the parts not named; `all` names them all
            default = field_default(fields[k])
            if dataclasses.is_dataclass(default):
                v = {**{f: x for f, x in to_dict(default).items() if x is not None}, **v}
        values[k] = _convert(v, hints[k], prefix + k)
    return cls(**values)


def field_default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _is_number_or_section(hint) -> bool:
    args = typing.get_args(hint)
    return any(dataclasses.is_dataclass(a) for a in args) and any(a in (int, float) for a in args)


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def _leaf_paths(cls, prefix: str = "") -> dict[str, str]:
    """bare key -> dotted path, for every leaf field (nested dataclasses flattened)."""
    paths = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            paths.update(_leaf_paths(hints[f.name], f"{prefix}{f.name}."))
        else:
            paths[f"{prefix}{f.name}"] = f"{prefix}{f.name}"
    return paths


def _part_paths(cls, prefix: str = "") -> set[str]:
    """Dotted paths into the section of a `number | Section` field (`lr.vision`): given in full, never bare."""
    paths = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            paths |= _part_paths(hint, f"{prefix}{f.name}.")
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                paths |= {f"{prefix}{f.name}.{k}" for k in _leaf_paths(arg)}
    return paths


def parse_overrides(cls, args: list[str]) -> dict:
    """`--a.b value --flag` -> nested dict; bare keys are resolved when unique."""
    leaves = _leaf_paths(cls)
    parts = _part_paths(cls)
    by_name: dict[str, list[str]] = {}
    for path in leaves:
        by_name.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    out: dict = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; overrides look like --key value")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
            i += 2
        else:
            value, i = "true", i + 1
        key = key.replace("-", "_")
        if key not in leaves and key not in parts:
            candidates = by_name.get(key, [])
            if len(candidates) != 1:
                hint = f"; did you mean one of {candidates}?" if candidates else ""
                raise ConfigError(f"unknown config key {key!r}{hint}")
            key = candidates[0]
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            if _is_number(node.get(p)):  # `--lr 1e-3 --lr.vision 4e-3`
                node[p] = _over_number(node[p], {})
            node = node.setdefault(p, {})
        node[leaf] = value  # text: from_dict converts it by the field's type
    return out


def merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and _is_number(merged.get(k)):
            merged[k] = _over_number(merged[k], {})  # a YAML `lr: 1e-4` under `--lr.vision 5e-6`
        merged[k] = merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def load(cls, yaml_path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None):
    """Defaults < `base` (e.g. a preset) < YAML file < command-line overrides."""
    data = dict(base or {})
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping at top level")
        data = merge(data, loaded)
    data = merge(data, parse_overrides(cls, overrides or []))
    return from_dict(cls, data)


def save(config, path: str | Path) -> None:
    """Written beside and renamed, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(to_dict(config), allow_unicode=True, sort_keys=False))
    tmp.rename(path)
