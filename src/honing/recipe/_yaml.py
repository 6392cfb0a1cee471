"""Reading recipe YAML safely, and finding the line of every field.

Only ``yaml.SafeLoader`` (no arbitrary Python objects: a tag such as
``!!python/object/apply:os.system`` is an error). The document is composed first, so every
key keeps its line; the line map takes a field path to the 1-based line of its key.

Bounded before anything is built from it (docs/security.md): at most ``MAX_RECIPE_BYTES`` of
text, ``MAX_DEPTH`` levels of nesting and ``MAX_VALUES`` values once aliases are expanded (an
"alias bomb" of a few hundred bytes expands to billions), and no alias that contains itself.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from honing.recipe._errors import Loc, Problem


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a number (YAML 1.1 needs ``1.0e-3``)."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

LineMap = dict[tuple[str, ...], int]

MAX_RECIPE_BYTES = 1 << 20
MAX_DEPTH = 40
MAX_VALUES = 100_000


class _TooBig(Exception):
    pass


def read_yaml(text: str) -> tuple[Any, LineMap, list[Problem]]:
    """Parse ``text`` -> (data, line map, problems). Problems are syntax errors, unsafe tags and
    duplicate keys; data is None when the text could not be read."""
    lines: LineMap = {}
    problems: list[Problem] = []
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RECIPE_BYTES:
        return None, lines, [Problem("", None, f"the recipe is {size:,} bytes; allowed: at most "
                                               f"{MAX_RECIPE_BYTES:,} (a recipe is a few kilobytes)")]
    try:
        loader = _Loader(text)  # its reader refuses control characters at once
    except yaml.YAMLError as err:
        return None, {}, [Problem("", None, f"invalid YAML: {err}")]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines, problems
        bound = _bound(node)
        if bound is not None:
            return None, lines, [bound]
        _walk(node, (), lines, problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        if isinstance(err, yaml.constructor.ConstructorError):
            at = [k for k, v in lines.items() if v == line]
            keys = [k for k in at if not k[-1].isdigit()] or at  # the key the tagged value belongs to
            path = ".".join(max(keys, key=len)) if keys else ""
            what = f"{err.problem}; allowed: plain YAML values only (no tags such as !!python/...)"
            return None, lines, [Problem(path, line, f"unsafe or unknown YAML tag: {what}")]
        what = " ".join(s for s in (err.context, err.problem) if s)
        return None, {}, [Problem("", line, f"invalid YAML: {what}")]
    except yaml.YAMLError as err:
        return None, {}, [Problem("", None, f"invalid YAML: {err}")]
    except RecursionError:
        return None, {}, [Problem("", None, f"invalid YAML: nested too deeply; allowed: at most {MAX_DEPTH} levels")]
    finally:
        loader.dispose()
    return data, lines, problems


def _bound(root: yaml.Node) -> Problem | None:
    """A problem when the document nests deeper than MAX_DEPTH, expands (through aliases) to more
    than MAX_VALUES values, or holds an alias that contains itself; else None. Shared nodes (an
    anchor used many times) are counted once per use without being walked again."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        line = node.start_mark.line + 1
        if key in open_nodes:
            raise _TooBig(Problem("", line, "invalid YAML: an alias refers to the node that contains it; allowed: "
                                            "aliases of earlier, separate values"))
        if depth > MAX_DEPTH:
            raise _TooBig(Problem("", line, f"invalid YAML: nested too deeply; allowed: at most {MAX_DEPTH} levels"))
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item, depth + 1) for item in node.value)
        open_nodes.discard(key)
        if total > MAX_VALUES:
            raise _TooBig(Problem("", line, f"invalid YAML: the document expands to more than {MAX_VALUES:,} values "
                                            "(aliases repeated inside aliases?); allowed: a recipe of ordinary size"))
        sizes[key] = total
        return total

    try:
        size(root, 0)
    except _TooBig as err:
        return err.args[0]
    return None


def _walk(node: yaml.Node, path: tuple[str, ...], lines: LineMap, problems: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                where = ".".join((*path, key))
                problems.append(Problem(where, line, f"duplicate key {key!r} (first at line {seen[key]}); "
                                                     "allowed: each key once per mapping"))
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, str(i))] = item.start_mark.line + 1
            _walk(item, (*path, str(i)), lines, problems)


def line_of(lines: LineMap, loc: Loc) -> int | None:
    """The line of the nearest field along ``loc`` that the YAML text has (None if none)."""
    key = tuple(str(p) for p in loc)
    if key[:2] == ("compress", "steps") and key not in lines and ("compress", "0") in lines:
        key = ("compress", *key[2:])  # `compress: [...]`, the list form of compress.steps
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return None
