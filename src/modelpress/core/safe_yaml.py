"""Reading a recipe's YAML defensively: plain data only, small, shallow, no duplicate keys.

``yaml.safe_load`` already refuses the tags that build Python objects, but it still
* builds dates from unquoted timestamps and accepts ``!!binary``, ``!!set`` or any tag the
  safe constructor happens to know,
* keeps the last of two equal keys without a word,
* recurses once per nesting level (a few thousand ``[`` end in RecursionError), and
* expands aliases lazily: a "billion laughs" document is a few hundred bytes that turns into
  a tree validation would walk for hours.
PyYAML has no option for any of these, so the document is checked in two cheap passes before
anything is built: the event stream (size and depth, without recursion) and the composed node
graph (tags, duplicate keys, the node count with every alias expanded, counted with
memoisation so the count itself stays linear).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelpress.core.errors import RecipeError

MAX_BYTES = 1 << 20  # recipes are a few KB; a search grid stays far below this
MAX_DEPTH = 32
MAX_NODES = 100_000  # after alias expansion: what pydantic would walk
_CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when built


class _PlainLoader(_Loader):
    """SafeLoader that leaves unquoted dates as strings (a recipe holds no timestamps)."""


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _CORE + "timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


class UnsafeYaml(ValueError):
    """The document is valid YAML but not one a recipe may be."""


def load_recipe_yaml(path: Path) -> Any:
    """The recipe file's data, or :class:`RecipeError` with one line saying what is wrong."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UnsafeYaml(f"{size:,} bytes; a recipe may be at most {MAX_BYTES:,}")
        return load_plain(path.read_bytes().decode("utf-8"))
    except UnsafeYaml as exc:
        raise RecipeError(str(path), [f"refused: {exc}"]) from None
    except yaml.YAMLError as exc:
        raise RecipeError(str(path), [f"not valid YAML: {exc}".replace("\n", " ")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(str(path), [f"cannot read: {exc}"]) from None


def load_plain(text: str) -> Any:
    """Parse ``text`` into dicts, lists, strings, numbers, booleans and None, or raise."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise UnsafeYaml(f"more than {MAX_BYTES:,} bytes")
    _check_events(text)
    loader = _PlainLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_events(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_PlainLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise UnsafeYaml(f"{_line(event)}nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _check_nodes(root: yaml.Node) -> None:
    """Tags, duplicate keys, alias cycles and the expanded size, without recursion (memoised by
    node). A node met again while its own children are still open is reached through itself:
    an alias inside its anchor (``&a [*a]``), which no expansion count would ever finish."""
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()  # entered, children not all counted yet: the current path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in expanded:
            continue
        children = _children(node)
        if not children_done:
            if id(node) in open_nodes:
                raise UnsafeYaml(f"{_line(node)}an alias refers to a value that contains it (a recursive "
                                 "alias): it would expand for ever")
            _check_node(node)
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in expanded)
            continue
        open_nodes.discard(id(node))
        expanded[id(node)] = 1 + sum(expanded[id(child)] for child in children)
        if expanded[id(node)] > MAX_NODES:
            raise UnsafeYaml(f"{_line(node)}expands to more than {MAX_NODES:,} values (aliases repeated)")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_node(node: yaml.Node) -> None:
    if node.tag not in ALLOWED_TAGS:
        raise UnsafeYaml(f"{_line(node)}tag {_short(node.tag)} is not allowed: a recipe holds plain "
                         "data (mappings, lists, strings, numbers, booleans, null)")
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen and key.tag != _CORE + "merge":
                    raise UnsafeYaml(f"{_line(key)}key {key.value!r} is given twice")
                seen.add(key.value)


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def _line(mark_holder: Any) -> str:
    mark = getattr(mark_holder, "start_mark", None)
    return f"line {mark.line + 1}: " if mark is not None else ""
