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


def _record_lines(node: yaml.Node, loc: tuple[Any, ...], lines: dict[str, int]) -> None:
    lines[format_path(loc)] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
            lines[format_path((*loc, k))] = key.start_mark.line + 1
            _record_lines(value, (*loc, k), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, (*loc, i), lines)


def line_of(lines: dict[str, int], path: str) -> int | None:
    """The line of a key path, or of its nearest ancestor that has one."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


def parse_yaml(text: str, file: str) -> tuple[Any, dict[str, int]]:
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError(file, [Problem("(yaml)", str(e).replace("\n", " "), line)]) from None
    lines: dict[str, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return data, lines


def load_config(path: str | Path) -> LoadedConfig:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(file, [Problem("(file)", f"cannot read: {e.strerror or e}")]) from None
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
