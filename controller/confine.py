"""Paths in the GitOps repository are untrusted input: anyone who can push can commit a symbolic link.

greenops follows none of them, where it reads (policies, the gate's config) or writes (generated files):
a link could point anywhere the controller can read or write, and what the merge request shows would not
be what was read or written. Only the part of a path below the repository (or the folder the user named)
is checked: what lies above it is the operator's, not the repository's.
"""

from pathlib import Path, PurePosixPath

SYMLINK_FIX = ("greenops never follows symbolic links in the repository (they can reach files outside it): "
               "replace the symlink with a regular file (or folder), or remove it")


def symlink_on_the_way(root: Path, path: Path) -> Path | None:
    """The first symbolic link from ``root`` (excluded) down to ``path`` (included), or None.

    A ``path`` outside ``root`` is checked alone: its parents are the operator's, not the repository's."""
    try:
        parts = path.absolute().relative_to(root.absolute()).parts
    except ValueError:
        return path if path.is_symlink() else None
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            return current
    return None


def unsafe_to_write(root: Path, relative: PurePosixPath, deleting: bool = False) -> str | None:
    """Why greenops must not write (or delete) ``relative`` in the clone at ``root``; None when it may.
    Deleting a link removes the link itself, so only the folders on its way are checked then."""
    if relative.is_absolute() or ".." in relative.parts:
        return f"{relative} is not a path inside the repository; greenops writes only below its clone"
    link = symlink_on_the_way(root, root / (relative.parent if deleting else relative))
    if link is not None:
        return f"{link.relative_to(root)} is a symbolic link in the repository; {SYMLINK_FIX}"
    current = root
    for part in relative.parts[:-1]:
        current = current / part
        if current.exists() and not current.is_dir():
            return (f"{current.relative_to(root)} is a file where greenops writes the folder for {relative}; "
                    "move or remove that file")
    return None
