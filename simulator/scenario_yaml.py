"""Reading a scenario file's YAML without letting the file take the machine.

Before anything is built, one streaming pass over the parser's events measures
the file: how deep its blocks and flows nest (PyYAML's composer recurses, and its
pure-Python scanner is quadratic in flow depth) and how many values it holds once
every alias is expanded (a "billion laughs" file is small on disk and explodes in
the validator). Integers are read only up to 40 digits. Each refusal is a
:class:`~simulator.scenario.ScenarioError` with the line it happened on.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from simulator.limits import Limits

Progress = Callable[[float, float], None]
"""``progress(done, total)``: bytes of the file read so far."""

Fail = Callable[..., Exception]
"""Builds the error for ``(line, reason, field="")``; the caller knows the path."""

MAX_INT_DIGITS = 40

# Memory that reading needs per YAML value (node tree, data, validated models alive
# together), measured with psutil's RSS before and after parse_scenario on a 2.4 MB
# file listing 30,000 devices one by one: 194 MB for 360,007 values, 539 bytes each.
BYTES_PER_VALUE = 600

try:  # libyaml's parser: same events, same marks, much faster on large files
    _BaseLoader: type = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader


def _bool_resolvers() -> dict:
    """YAML 1.2 booleans: only true/false. ``on``, ``off``, ``yes`` and ``no`` stay
    words, so ``doze: {device: d, on: true}`` means what it says."""
    table = {first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
             for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    rx = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
    for first in "tTfF":
        table.setdefault(first, []).append(("tag:yaml.org,2002:bool", rx))
    return table


class Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The scenario dialect: YAML 1.2 booleans, integers of a sane length."""

    yaml_implicit_resolvers = _bool_resolvers()

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"a number of {digits} digits is too large", node.start_mark)
        return super().construct_yaml_int(node)


Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)


def read_text(path: Path, limits: Limits, fail: Fail) -> str:
    """The file as text: a regular file, within the size limit, valid UTF-8."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise fail(None, "is a folder, not a scenario file")
        cap = int(limits.file_mb * 1_000_000)
        if info.st_size > cap:
            raise fail(None, f"{info.st_size / 1e6:.1f} MB is over the limit of "
                             f"{limits.describe('file_mb')} (raise it with --limit file_mb=N)")
        with path.open("rb") as fh:
            raw = fh.read(cap + 1)  # a device or a pipe has no size: read at most the cap
    except OSError as exc:
        raise fail(None, exc.strerror or str(exc)) from None
    if len(raw) > cap:
        raise fail(None, f"more than the limit of {limits.describe('file_mb')}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise fail(line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                         f"{exc.start}); a scenario is a YAML text file") from None


def measure(text: str, limits: Limits, fail: Fail, progress: Progress | None = None) -> None:
    """Refuse nesting deeper than ``limits.nesting`` or more than ``limits.nodes``
    values with aliases expanded, streaming, before anything is composed."""
    import psutil

    sizes: dict[str, int] = {}  # anchor -> values it expands to
    stack: list[tuple[str | None, int]] = []
    total = 0
    available = psutil.virtual_memory().available
    affordable = min(limits.nodes, available // BYTES_PER_VALUE)
    every = 20_000
    try:
        for i, event in enumerate(yaml.parse(text, Loader=Loader)):
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append((event.anchor, total))
                total += 1
                if len(stack) > limits.nesting:
                    raise fail(event.start_mark.line + 1, f"nested more than "
                               f"{limits.nesting} deep (limit nesting)")
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, start = stack.pop()
                if anchor is not None:
                    sizes[anchor] = total - start
            elif isinstance(event, yaml.ScalarEvent):
                total += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                total += sizes.get(event.anchor, 1)
            if total > affordable:
                raise fail(event.start_mark.line + 1, _too_many(limits, available))
            if progress is not None and i % every == 0:
                progress(event.start_mark.index, len(text))
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, fail) from None
    if progress is not None:
        progress(len(text), len(text))


def _too_many(limits: Limits, available: int) -> str:
    if limits.nodes * BYTES_PER_VALUE <= available:
        return (f"more than {limits.describe('nodes')} values once aliases are expanded "
                "(limit nodes)")
    size = f"{available / 1e9:.1f} GB" if available >= 1e9 else f"{available / 1e6:.0f} MB"
    return (f"reading more than {available // BYTES_PER_VALUE:,} values needs more than the "
            f"{size} this machine has available ({BYTES_PER_VALUE} bytes a value)")


def compose(text: str, fail: Fail) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data built from it."""
    loader = Loader(text)
    node = None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        loc = path_at(node, mark) if mark is not None else None
        if loc is None:
            raise _yaml_error(exc, fail) from None
        raise fail(mark.line + 1, exc.problem, ".".join(str(p) for p in loc)) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, fail) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # a constructor's own error
        raise fail(None, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return node, data


def _yaml_error(exc: yaml.YAMLError, fail: Fail) -> Exception:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "maximum nesting depth" in problem:  # libyaml's own cap, met before ours in flows
        return fail(line, "nested too deep (limit nesting)")
    return fail(line, f"not valid YAML: {problem}")


def path_at(root: yaml.Node | None, mark: yaml.Mark) -> tuple | None:
    """The field path (keys and indexes) of the value that starts at ``mark``."""
    todo: list[tuple[yaml.Node, tuple]] = [(root, ())] if root is not None else []
    seen: set[int] = set()
    while todo:
        node, loc = todo.pop()
        if id(node) in seen:  # aliases share nodes
            continue
        seen.add(id(node))
        start = node.start_mark
        if (start.line, start.column) == (mark.line, mark.column) \
                and isinstance(node, yaml.ScalarNode):
            return loc
        if isinstance(node, yaml.MappingNode):
            todo.extend((value, (*loc, key.value)) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend((value, (*loc, i)) for i, value in enumerate(node.value))
    return None


def line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The 1-based line of the deepest YAML node that ``loc`` reaches."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    # a scalar: its own line; a block below a key: the key's line
                    mark = value if isinstance(value, yaml.ScalarNode) else key
                    line = mark.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
