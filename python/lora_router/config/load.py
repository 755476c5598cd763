"""Reading a YAML config: parse, validate against the schema, run the cross-field checks.
Every problem names the file, the key path and (where known) the line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import LoraRouterError
from .models import RouterConfig


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    line: int | None = None

    def render(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line else self.path
        return f"{where}: {self.message}"


class ConfigError(LoraRouterError):
    """An invalid configuration. ``problems`` lists everything wrong, not only the first."""

    def __init__(self, file: str, problems: Iterable[Problem]):
        self.file = file
        self.problems = list(problems)
        lines = "\n".join(f"  - {p.render()}" for p in self.problems)
        super().__init__(f"invalid config {file}:\n{lines}")


@dataclass
class LoadedConfig:
    config: RouterConfig
    file: str
    base_dir: Path
    warnings: list[str] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)
    plain_keys: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """Tenants' plain keys (from the environment or a key file), read and hashed once per
    load: plan rebuilds (adapters or tenants changed at run time) reuse them."""


def format_path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


MAX_DEPTH = 64
"""Deepest nesting a config may have (real ones stay under ten levels)."""
MAX_NODES = 2_000_000
"""Most values a config may stand for once its YAML aliases are expanded (a small file whose
aliases nest can stand for billions: every reader of the data would then stall)."""


def _record_lines(root: yaml.Node, lines: dict[str, int]) -> str | None:
    """Records the line of every key path, without recursion and visiting each node once
    (an alias is the same node again). Returns why the document is refused, if it is: too
    deep, or too many values once aliases are expanded."""
    expanded: dict[int, int] = {}
    stack: list[tuple[yaml.Node, tuple[Any, ...], bool]] = [(root, (), False)]
    seen: set[int] = set()
    while stack:
        node, loc, done = stack.pop()
        children = [v for _, v in node.value] if isinstance(node, yaml.MappingNode) else None
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done:
            # Post-order: the node's expanded size, from its children's (each counted once).
            if any(id(c) not in expanded for c in children or []):
                return "the document refers to itself through an alias (it would never end)"
            expanded[id(node)] = 1 + sum(expanded[id(c)] for c in children or [])
            if expanded[id(node)] > MAX_NODES:
                return f"the document stands for more than {MAX_NODES:,} values once its aliases are expanded"
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(loc) > MAX_DEPTH:
            return f"the document nests deeper than {MAX_DEPTH} levels (at {format_path(loc[:4])}...)"
        lines.setdefault(format_path(loc), node.start_mark.line + 1)
        stack.append((node, loc, True))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
                lines.setdefault(format_path((*loc, k)), key.start_mark.line + 1)
                stack.append((value, (*loc, k), False))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, (*loc, i), False))
    return None


def line_of(lines: dict[str, int], path: str) -> int | None:
    """The line of a key path, or of its nearest ancestor that has one."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


def parse_yaml(text: str, file: str) -> tuple[Any, dict[str, int]]:
    def refuse(why: str, line: int | None = None) -> ConfigError:
        return ConfigError(file, [Problem("(yaml)", why, line)])

    # libyaml's parser where PyYAML has it (far faster on large files), else the pure one.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        why = _record_lines(node, lines) if node is not None else None
        if why:
            raise refuse(why)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise refuse(str(e).replace("\n", " "), mark.line + 1 if mark else None) from None
    except RecursionError:
        raise refuse(f"the document nests deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    return data, lines


def load_config(path: str | Path) -> LoadedConfig:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(file, [Problem("(file)", f"cannot read: {e.strerror or e}")]) from None
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise ConfigError(file, [Problem("(file)", f"not UTF-8 text (byte {e.start})", line)]) from None
    data, lines = parse_yaml(text, file)
    return validate(data, file, Path(path).resolve().parent, lines)


def validate(data: Any, file: str, base_dir: Path, lines: dict[str, int] | None = None) -> LoadedConfig:
    """Validates already-parsed config data (a dict) as if it came from ``file``."""
    from .checks import cross_check

    lines = lines or {}
    if not isinstance(data, dict):
        raise ConfigError(file, [Problem("(root)", "the config must be a YAML mapping", 1)])
    try:
        config = RouterConfig.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            p = format_path(err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(Problem(p, msg, line_of(lines, p)))
        raise ConfigError(file, problems) from None
    loaded = LoadedConfig(config=config, file=file, base_dir=base_dir, lines=lines)
    problems = cross_check(loaded)
    if problems:
        raise ConfigError(file, [Problem(p.path, p.message, p.line or line_of(lines, p.path)) for p in problems])
    return loaded
