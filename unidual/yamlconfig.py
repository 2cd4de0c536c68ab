"""One loader for every YAML file the project reads, and one way to check what it builds.

* :func:`safe_load` -- ``yaml.safe_load`` that refuses alias bombs before anything is expanded;
* :func:`load_yaml_file` -- one file, alias bombs and binary files refused;
* :func:`read_yaml` -- a file, with its ``base:`` chain merged underneath (a path relative
  to the file), so configs that differ in a few keys share one base;
* :func:`apply_override` -- ``dotted.key=value`` from the command line;
* :func:`from_dict` -- a nested mapping into a dataclass, checked against the field types:
  an unknown key, a wrong type, a bad choice or a missing required key raises
  :class:`ConfigError` naming the file and the key, because a silently ignored typo
  (``optim.lrr``) costs a whole training run.

**The validation style** (train configs, study files, data specs): a dataclass checks its own
fields. A range or choice sits on the field itself (``lr: float = checked(0.01, positive)``) and
:class:`Checked`'s ``__post_init__`` runs it; a check between two fields of the same dataclass
goes in its ``__post_init__`` and raises :class:`FieldError` naming the field. Either way the
error carries the field's name, and :func:`from_dict` puts the key path above it and the file in
front (``run.yaml: optim.lr: must be > 0, got -1``). Only checks that join sections (the regime
against the model and the sources, say) live in one function beside the top-level dataclass.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key and where it came from."""


# --------------------------------------------------------------------------- alias-bomb-safe YAML

# ``yaml.safe_load`` builds aliased nodes as shared Python objects, so a "billion laughs" file
# loads quickly and only explodes later, when a deep copy, ``dataclasses.asdict`` or a dump walks
# it. :func:`safe_load` measures the composed node graph first (a node counts once per path that
# reaches it, computed with a memo, so measuring is linear in the file) and refuses documents
# whose expanded size is past a limit.
MAX_EXPANDED_NODES = 1_000_000  # nodes after expanding every alias (a big config has a few thousand)


class YamlLimitError(yaml.YAMLError):
    """The document is valid YAML but expands past the limits (an alias bomb)."""


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once (PyYAML refuses to construct it anyway)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo, limit)
            if size > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, limit) + _expanded_size(v, memo, limit)
            if size > limit:
                break
    memo[key] = size
    return size


def safe_load(text: str, *, max_nodes: int = MAX_EXPANDED_NODES) -> Any:
    """Like ``yaml.safe_load`` but raises :class:`YamlLimitError` for alias bombs."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {}, max_nodes)
        if size > max_nodes:
            raise YamlLimitError(
                f"expands to more than {max_nodes} values through aliases; refused as a possible alias bomb"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- files and overrides


def load_yaml_file(path: str | Path) -> Any:
    """The parsed document of one YAML file; ConfigError naming the file when it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        return safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a YAML config must be UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping, with its ``base:`` chain merged underneath."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back on itself")
    raw = load_yaml_file(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a path string, got {base!r}")
    parent = read_yaml(path.parent / base, _seen + (path.resolve(),))
    return deep_merge(parent, raw)


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; nested mappings merge, everything else (lists too) replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(raw: dict[str, Any], text: str) -> None:
    """Apply one ``dotted.key=value`` (value parsed as a YAML scalar/flow value) in place."""
    if "=" not in text:
        raise ConfigError(f"command line: override {text!r} must look like key=value (e.g. optim.lr=0.1)")
    key, _, value_text = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"command line: override {text!r} has an empty key")
    try:
        value = safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"command line: value of {key!r} is not valid YAML ({exc})") from exc
    node: Any = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: i + 1]), create=True)
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, key)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"command line: {'.'.join(parts[:-1])!r} is not a section, cannot set {key!r}")


def _child(node: Any, part: str, path: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path)]
    if not isinstance(node, dict):
        raise ConfigError(f"command line: {path!r} goes through a value that is not a section")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def _index(node: list, part: str, path: str) -> int:
    """A list item by position, or (lists of sources) by its ``key``: ``sources.cifar.head`` = the one keyed cifar.

    The key form survives a config that reorders or drops sources (a study row trains a subset), where a
    position would silently address another source.
    """
    keys = [item.get("key") if isinstance(item, dict) else None for item in node]
    if part in keys:
        return keys.index(part)
    try:
        i = int(part)
    except ValueError:
        named = [k for k in keys if isinstance(k, str)]
        raise ConfigError(
            f"command line: {path!r}: no list item keyed {part!r}"
            + (f" (keys: {named})" if named else "; list position must be an integer")
        ) from None
    if not -len(node) <= i < len(node):
        raise ConfigError(f"command line: {path!r}: position {i} out of range (list has {len(node)} items)")
    return i


# --------------------------------------------------------------------------- field checks

#: A check of one field's value: the problem (``"must be > 0, got -1"``), or None when it is fine.
Check = Callable[[Any], "str | None"]


class FieldError(ValueError):
    """A dataclass field holds a bad value; ``key`` names the field, :func:`from_dict` adds the path and file."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def checked(default: Any = dataclasses.MISSING, *checks: Check, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field whose value must pass ``checks`` (None passes: the field's type allows it or not)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"checks": checks})


def check_fields(obj: Any) -> None:
    """Run the :func:`checked` checks of every field of dataclass ``obj``; the first problem raises FieldError."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        for check in f.metadata.get("checks", ()):
            problem = check(value)
            if problem:
                raise FieldError(f.name, problem)


class Checked:
    """Base of a dataclass whose fields carry checks; a subclass's own ``__post_init__`` calls ``super()`` first."""

    def __post_init__(self) -> None:
        check_fields(self)


def recheck(obj: Any, where: str, prefix: str = "") -> None:
    """Run again the checks of ``obj`` and every :class:`Checked` dataclass below it (after code changed a field)."""
    if isinstance(obj, Checked):
        try:
            obj.__post_init__()
        except FieldError as exc:
            raise ConfigError(f"{where}: {prefix}{exc.key}: {exc.problem}") from None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            recheck(getattr(obj, f.name), where, f"{prefix}{f.name}.")
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            recheck(item, where, f"{prefix[:-1]}.{i}.")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive(value: Any) -> str | None:
    """A number > 0."""
    return None if _is_number(value) and value > 0 else f"must be > 0, got {value!r}"


def at_least(low: float) -> Check:
    """A number >= ``low``."""
    return lambda value: None if _is_number(value) and value >= low else f"must be >= {low}, got {value!r}"


def within(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Check:
    """A number in ``[low, high]`` (``(`` / ``)`` where open)."""

    def check(value: Any) -> str | None:
        inside = _is_number(value) and (low < value if low_open else low <= value)
        inside = inside and (value < high if high_open else value <= high)
        span = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        return None if inside else f"must be in {span}, got {value!r}"

    return check


def one_of(choices: Iterable[Any] | Callable[[], Iterable[Any]]) -> Check:
    """A value among ``choices`` (a callable is asked each time: a table that grows as entries register)."""

    def check(value: Any) -> str | None:
        allowed = list(choices() if callable(choices) else choices)
        return None if value in allowed else f"must be one of {allowed}, got {value!r}"

    return check


def each(check: Check) -> Check:
    """Every item of a list (or every value of a mapping) passes ``check``."""

    def check_items(values: Any) -> str | None:
        items = values.values() if isinstance(values, Mapping) else values
        return next((problem for problem in map(check, items) if problem), None)

    return check_items


# --------------------------------------------------------------------------- typed building


def from_dict(cls: type, raw: Any, where: str = "<dict>", prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping; unknown keys, wrong types and missing keys raise."""
    return _build(cls, raw, where, prefix)


def _build(cls: type, raw: Any, where: str, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'config'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {prefix + str(unknown[0])!r} (known in "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(sorted(names))})"
        )
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in raw]
    if missing:
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'config'}: missing required key {missing[0]!r}")
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _convert(hints[name], value, where, prefix + name)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except FieldError as exc:
        raise ConfigError(f"{where}: {prefix}{exc.key}: {exc.problem}") from None
    except Exception as exc:
        if not prefix and str(exc).startswith(f"{where}: "):  # the check named the object already
            raise ConfigError(str(exc)) from exc
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'config'}: {exc}") from exc


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, where, key + ".")
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {key}: {value!r} fits none of {tp}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, bool) and ("off" if value is False else "on") in choices:
            value = "off" if value is False else "on"  # YAML 1.1 reads a bare off / on as a boolean
        if value not in choices:
            raise ConfigError(f"{where}: {key} must be one of {list(choices)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, where, f"{key}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} must be a mapping, got {value!r}")
        _, item = typing.get_args(tp)
        return {str(k): _convert(item, v, where, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return copy.deepcopy(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            # 1e6 in YAML is a string; 1.0e6 a float: accept whole floats for sizes.
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {key} must be a path (a non-empty string), got {value!r}")
        return Path(value)
    raise TypeError(f"config type {tp!r} of {key} is not supported")  # programming error


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return {prefix[:-1]: value}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def config_differences(
    stored: Mapping[str, Any], current: Mapping[str, Any], ignore: Collection[str] = ()
) -> list[tuple[str, Any, Any]]:
    """``(dotted key, stored value, current value)`` wherever two resolved configs differ.

    A YAML round trip comes first, so tuples and lists, ints and equal floats compare alike.
    Only keys both sides have count: both are fully resolved, so a key on one side only was
    added (with its default) or removed by another version of the code. ``ignore`` lists
    keys that do not change what is trained (progress bars, output paths).
    """
    a = _flatten(yaml.safe_load(yaml.safe_dump(_plain(stored))))
    b = _flatten(yaml.safe_load(yaml.safe_dump(_plain(current))))
    return [(k, a[k], b[k]) for k in a if k in b and k not in ignore and a[k] != b[k]]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
