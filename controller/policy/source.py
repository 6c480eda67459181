"""Read YAML documents together with the line/column of every value.

Editors, CI logs and pre-commit all want ``file:line:column``; PyYAML's node graph
carries those marks, so we compose nodes first and construct data from them.
"""

from collections.abc import Hashable, Iterator
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
    non_string_keys: list[tuple[str, Position, str, str]] = field(default_factory=list)  # pointer, at, tag, text
    oversized: bool = False  # aliases expand it beyond MAX_EXPANDED_VALUES: refuse before any check

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
    """Escape one JSON-pointer reference token (RFC 6901); ``true`` and ``null`` keys spelt as in YAML, so a
    non-string key has one pointer whether it comes from the node graph or from the data."""
    text = "null" if token is None else ("true" if token else "false") if isinstance(token, bool) else str(token)
    return text.replace("~", "~0").replace("/", "~1")


def _mark(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


STRING_TAG = "tag:yaml.org,2002:str"
MAX_EXPANDED_VALUES = 100_000


def expanded_size(node: yaml.Node, sizes: dict[int, int], active: set[int]) -> int:
    """How many values ``node`` stands for once aliases are expanded (a cycle counts as too many)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        return MAX_EXPANDED_VALUES + 1
    active.add(key)
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    total = 1
    for child in children:
        total = min(total + expanded_size(child, sizes, active), MAX_EXPANDED_VALUES + 1)
    active.discard(key)
    sizes[key] = total
    return total


@dataclass
class _Walk:
    """Positions and key problems collected while walking a node graph once."""

    positions: dict[str, Position] = field(default_factory=dict)
    duplicates: list[tuple[str, Position]] = field(default_factory=list)
    non_string_keys: list[tuple[str, Position, str, str]] = field(default_factory=list)
    visited: set[int] = field(default_factory=set)
    keys: yaml.constructor.SafeConstructor = field(default_factory=yaml.constructor.SafeConstructor)

    def walk(self, node: yaml.Node, pointer: str) -> None:
        self.positions.setdefault(pointer, _mark(node))
        if id(node) in self.visited:  # an alias: walked once, so alias bombs and cycles stay cheap
            return
        self.visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            self._mapping(node, pointer)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, f"{pointer}/{index}")

    def _key(self, node: yaml.Node) -> object:
        """The key as the data will hold it (``true`` is True, ``0x1`` is 1): its pointer and its duplicates
        must match the data's; a key that cannot be made is left to construction to report."""
        if node.tag == STRING_TAG or not isinstance(node, yaml.ScalarNode):
            return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{type(node).__name__}>"
        try:
            key = self.keys.construct_object(node)
        except Exception:  # whatever the scalar's constructor raises (see _documents)
            return str(node.value)
        return key if isinstance(key, Hashable) else str(node.value)

    def _mapping(self, node: yaml.MappingNode, pointer: str) -> None:
        seen: set[object] = set()
        for key_node, value_node in node.value:
            key = self._key(key_node)
            child = f"{pointer}/{escape_pointer_token(key)}"
            if key_node.tag != STRING_TAG:
                written = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
                self.non_string_keys.append((child, _mark(key_node), key_node.tag.rsplit(":", 1)[-1], written))
            if key in seen:
                self.duplicates.append((child, _mark(key_node)))
            seen.add(key)
            self.positions[child] = _mark(value_node)
            self.positions.setdefault(f"{child}#key", _mark(key_node))
            self.walk(value_node, child)


def _documents(path: Path, loader: Any) -> Iterator[Document]:
    """Compose each document, walk it for positions, then construct it (refused first if oversized)."""
    index = 0
    while loader.check_node():
        node = loader.get_node()
        if node is None:
            continue
        walk = _Walk()
        walk.walk(node, "")
        if expanded_size(node, {}, set()) > MAX_EXPANDED_VALUES:
            loader.construct_document(node)  # keeps the loader's state consistent; cheap, aliases are shared
            yield Document(path, index, {}, walk.positions, oversized=True)
            index += 1
            continue
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError:
            raise
        except Exception as err:  # PyYAML's constructors fail on `!!float abc` (ValueError), `!!int ""` (IndexError)
            raise YamlSyntaxError(f"YAML value cannot be read ({type(err).__name__}: {err}); fix or quote it",
                                  _unconstructible_position(node)) from err
        if data is not None:  # an empty document, e.g. after a trailing ---
            yield Document(path, index, data, walk.positions, walk.duplicates, walk.non_string_keys)
        index += 1


def _unconstructible_position(node: yaml.Node) -> Position:
    """Where the first scalar sits whose tag cannot make a value of its text (``!!int x``), else 1:1."""
    constructor = yaml.constructor.SafeConstructor()
    pending, seen = [node], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, yaml.ScalarNode):
            try:
                constructor.construct_object(current)
            except Exception:  # whatever the scalar's constructor raises (see _documents)
                return _mark(current)
        elif isinstance(current, yaml.MappingNode):
            pending.extend(child for pair in reversed(current.value) for child in reversed(pair))
        elif isinstance(current, yaml.SequenceNode):
            pending.extend(reversed(current.value))
    return 1, 1


def _reader_position(text: str, offset: int) -> Position:
    """Line/column of a reader error's offset: libyaml counts UTF-8 bytes, PyYAML characters."""
    before = text.encode("utf-8")[:offset].decode("utf-8", "ignore") if _Loader is not yaml.SafeLoader \
        else text[:offset]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def read_documents(path: Path) -> Iterator[Document]:
    """Yield every non-empty YAML document of ``path`` with positions."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise YamlSyntaxError(f"not UTF-8 text ({err.reason}); save the file as UTF-8", (1, 1)) from err
    loader = _Loader(text)
    try:
        yield from _documents(path, loader)
    except yaml.reader.ReaderError as err:
        raise YamlSyntaxError(f"invalid YAML: character U+{err.character:04X} is not allowed ({err.reason}); "
                              "remove it, or write it as an escape (\\u...) in a double-quoted string",
                              _reader_position(text, err.position)) from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        position = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(f"invalid YAML: {err.problem or err.context}", position) from err
    except yaml.YAMLError as err:
        raise YamlSyntaxError(f"invalid YAML: {str(err).splitlines()[0]}", (1, 1)) from err
    except RecursionError as err:
        raise YamlSyntaxError("the document nests too deeply to be read; flatten it", (1, 1)) from err
    except (ValueError, OverflowError) as err:
        raise YamlSyntaxError(f"YAML value cannot be read ({type(err).__name__}: {err}); fix or quote it",
                              (1, 1)) from err
    finally:
        loader.dispose()
