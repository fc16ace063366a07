"""One policy file parsed once into plain data *and* its YAML node tree.

Validation errors arrive as paths (``("trunks", 1, "port")``); operators need
lines. Keeping PyYAML's composed node tree beside the constructed data lets us
map any path back to the line of the offending key or value, without a second
parse and without a custom YAML dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sbc.policy.issues import PolicyIssue

Loc = tuple[str | int, ...]
"""A path into a document: mapping keys and sequence indexes."""


@dataclass(frozen=True)
class PolicySource:
    """A parsed policy file: ``data`` for validation, ``root`` for line lookup."""

    name: str
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Loc) -> int:
        """Return the 1-based line that ``loc`` points at.

        Walks the node tree as far as the path exists: a missing key (a
        "Field required" error) therefore points at the mapping that lacks
        it. The last mapping step points at the key, so a block value such as
        a list still reports the line that names it.
        """
        node = self.root
        if node is None:
            return 1
        line = node.start_mark.line + 1
        for part in loc:
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
            line = (key_node or node).start_mark.line + 1
        return line

    def duplicate_keys(self) -> list[PolicyIssue]:
        """Report keys repeated in one mapping, which PyYAML would silently collapse."""
        issues: list[PolicyIssue] = []
        if self.root is not None:
            try:
                _find_duplicates(self.name, self.root, issues, set())
            except RecursionError:
                return [PolicyIssue(self.name, 1, "invalid YAML: nesting too deep")]
        return issues


def read_source(path: Path) -> PolicySource | PolicyIssue:
    """Read and parse ``path``; a missing, unreadable or malformed file becomes an issue."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return PolicyIssue(name, 0, "file not found")
    except UnicodeDecodeError as exc:
        return PolicyIssue(name, 0, f"file is not valid UTF-8: {exc.reason}")
    except OSError as exc:
        return PolicyIssue(name, 0, f"cannot read file: {exc.strerror or exc}")
    return parse_source(name, text)


def parse_source(name: str, text: str) -> PolicySource | PolicyIssue:
    """Parse YAML ``text`` into data plus node tree in a single pass."""
    try:
        loader = yaml.SafeLoader(text)  # the reader rejects control characters here
    except yaml.YAMLError as exc:
        return PolicyIssue(name, 1, f"invalid YAML: {_first_line(exc)}")
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        return _syntax_issue(name, exc)
    except yaml.YAMLError as exc:
        return PolicyIssue(name, 1, f"invalid YAML: {_first_line(exc)}")
    except RecursionError:
        return PolicyIssue(name, 1, "invalid YAML: nesting too deep")
    finally:
        loader.dispose()
    return PolicySource(name, data, root)


def _first_line(exc: yaml.YAMLError) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _syntax_issue(name: str, exc: yaml.MarkedYAMLError) -> PolicyIssue:
    """Turn a PyYAML error into ``file:line: invalid YAML: problem``."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    problem = exc.problem or exc.context or "syntax error"
    if exc.context and exc.problem:
        # PyYAML splits some messages ("expected a single document", "but found
        # another document") and puts others' circumstances in context.
        joined = exc.problem.startswith("but ")
        problem = f"{exc.context}, {problem}" if joined else f"{problem} ({exc.context})"
    return PolicyIssue(name, line, f"invalid YAML: {problem}")


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
    """Return ``(key_node, value_node)`` for one path step, or None if absent."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                return key_node, value_node
        return None
    in_sequence = isinstance(node, yaml.SequenceNode) and isinstance(part, int)
    if in_sequence and 0 <= int(part) < len(node.value):
        return None, node.value[int(part)]
    return None


def _find_duplicates(
    name: str, node: yaml.Node, issues: list[PolicyIssue], seen_nodes: set[int]
) -> None:
    """Depth-first search for repeated scalar keys (aliases are visited once)."""
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in keys:
                    line = key_node.start_mark.line + 1
                    issues.append(PolicyIssue(name, line, f"duplicate key '{key_node.value}'"))
                keys.add(key_node.value)
            _find_duplicates(name, value_node, issues, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _find_duplicates(name, item, issues, seen_nodes)
