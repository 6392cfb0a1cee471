"""Reading recipe YAML safely, and finding the line of every field.

Only ``yaml.SafeLoader`` (no arbitrary Python objects: a tag such as
``!!python/object/apply:os.system`` is an error). The document is composed first, so every
key keeps its line; the line map takes a field path to the 1-based line of its key.
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


def read_yaml(text: str) -> tuple[Any, LineMap, list[Problem]]:
    """Parse ``text`` -> (data, line map, problems). Problems are syntax errors, unsafe tags and
    duplicate keys; data is None when the text could not be read."""
    loader = _Loader(text)
    lines: LineMap = {}
    problems: list[Problem] = []
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines, problems
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
    finally:
        loader.dispose()
    return data, lines, problems


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
