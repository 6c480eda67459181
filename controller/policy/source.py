"""Read YAML documents together with the line/column of every value.

Editors, CI logs and pre-commit all want ``file:line:column``; PyYAML's node graph
carries those marks, so we compose nodes first and construct data from them.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

Position = tuple[int, int]


@dataclass(frozen=True)
class Document:
    """One YAML document of a file: its data and where each JSON pointer sits."""

    path: Path
    index: int
    data: Any
    positions: dict[str, Position]
    duplicate_keys: list[tuple[str, Position]] = field(default_factory=list)

    def position(self, pointer: str) -> Position:
        """Line/column of ``pointer``, or of its closest existing parent."""
        while pointer not in self.positions and pointer:
            pointer = pointer.rsplit("/", 1)[0]
        return self.positions.get(pointer, (1, 1))


class YamlSyntaxError(Exception):
    """The file is not valid YAML; carries the position of the problem."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.position = position


def escape_pointer_token(token: object) -> str:
    """Escape one JSON-pointer reference token (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def _mark(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, pointer: str, positions: dict[str, Position],
          duplicates: list[tuple[str, Position]]) -> None:
    positions.setdefault(pointer, _mark(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{pointer}/{escape_pointer_token(key)}"
            if key in seen:
                duplicates.append((child, _mark(key_node)))
            seen.add(key)
            positions[child] = _mark(value_node)
            positions.setdefault(f"{child}#key", _mark(key_node))
            _walk(value_node, child, positions, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, f"{pointer}/{index}", positions, duplicates)


def read_documents(path: Path) -> Iterator[Document]:
    """Yield every non-empty YAML document of ``path`` with positions."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise YamlSyntaxError(f"not UTF-8 text ({err.reason}); save the file as UTF-8", (1, 1)) from err
    loader = _Loader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            positions: dict[str, Position] = {}
            duplicates: list[tuple[str, Position]] = []
            _walk(node, "", positions, duplicates)
            yield Document(path, index, loader.construct_document(node), positions, duplicates)
            index += 1
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        position = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(f"invalid YAML: {err.problem or err.context}", position) from err
    except yaml.YAMLError as err:
        raise YamlSyntaxError(f"invalid YAML: {err}", (1, 1)) from err
    finally:
        loader.dispose()
