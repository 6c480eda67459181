"""A problem found in a policy file, located precisely enough for an editor to jump to it."""

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
        """``file:line:column: json-pointer: message`` (the pointer ``(root)`` for the whole document)."""
        return f"{self.file}:{self.line}:{self.column}: {self.pointer or '(root)'}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def display_path(path: Path, root: Path | None = None) -> str:
    """Paths relative to ``root`` (default: the working directory) when possible, as linters print them;
    a symbolic link is named as itself, never as what it points to."""
    absolute = path.parent.resolve() / path.name if path.is_symlink() else path.resolve()
    try:
        return str(absolute.relative_to((root or Path.cwd()).resolve()))
    except ValueError:
        return str(path)
