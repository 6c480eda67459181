"""A problem found in a policy file, located precisely enough for an editor to jump to it."""

import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one policy file."""

    file: str
    line: int
    column: int
    pointer: str
    message: str

    def render(self) -> str:
        """``file:line:column: json-pointer: message`` (the pointer ``(root)`` for the whole document), on
        one line and with control characters escaped."""
        return printable(f"{self.file}:{self.line}:{self.column}: {self.pointer or '(root)'}: {self.message}")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _unprintable(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp")  # U+2028 and U+2029 break lines too


def printable(text: str) -> str:
    """``text`` with control, format and line-breaking characters escaped (``\\n``, ``\\x1b``, ``\\u202e``):
    a key copied from a policy must neither split a problem over lines nor send escape codes to a terminal."""
    if text.isprintable():
        return text
    return "".join(repr(char)[1:-1] if _unprintable(char) else char for char in text)


def display_path(path: Path, root: Path | None = None) -> str:
    """Paths relative to ``root`` (default: the working directory) when possible, as linters print them;
    a symbolic link is named as itself, never as what it points to."""
    absolute = path.parent.resolve() / path.name if path.is_symlink() else path.resolve()
    try:
        return str(absolute.relative_to((root or Path.cwd()).resolve()))
    except ValueError:
        return str(path)
