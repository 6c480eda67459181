"""Validate policy files and folders: every problem in every file, plus cross-file checks."""

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from controller.confine import SYMLINK_FIX, symlink_on_the_way
from controller.errors import BrokenInstallError
from controller.policy.checks import document_findings
from controller.policy.model import Policy, policy_from_data
from controller.policy.problems import Problem, display_path
from controller.policy.source import Document, YamlSyntaxError, read_documents

YAML_SUFFIXES = (".yaml", ".yml")
log = logging.getLogger("greenops.validate")


@dataclass(frozen=True)
class ValidationResult:
    policies: tuple[Policy, ...]
    problems: tuple[Problem, ...]
    files: int

    @property
    def ok(self) -> bool:
        return not self.problems


def _symlink_problem(link: Path, root: Path | None) -> Problem:
    return Problem(display_path(link, root), 1, 1, "", f"is a symbolic link; {SYMLINK_FIX}")


def _folder_files(folder: Path, root: Path | None) -> Iterator[Path | Problem]:
    """The YAML files below ``folder`` (sorted), never through a symbolic link: a linked YAML file or a
    linked folder is a Problem (os.walk does not descend into linked folders)."""
    found: list[Path] = []
    unreadable: list[Problem] = []

    def on_error(err: OSError) -> None:
        shown = display_path(Path(err.filename), root) if err.filename else display_path(folder, root)
        unreadable.append(Problem(shown, 1, 1, "", f"cannot read folder: {err.strerror or err}"))

    for parent, folders, names in os.walk(folder, onerror=on_error):
        for name in folders + names:
            entry = Path(parent, name)
            linked = entry.is_symlink() and (name in folders or entry.suffix in YAML_SUFFIXES)
            if linked or (name in names and entry.suffix in YAML_SUFFIXES and entry.is_file()):
                found.append(entry)
    yield from unreadable
    for entry in sorted(found):
        yield _symlink_problem(entry, root) if entry.is_symlink() else entry


def policy_files(paths: Iterable[Path], root: Path | None = None,
                 follow_symlinks: bool = False) -> Iterator[Path | Problem]:
    """Expand folders to their YAML files (sorted); a missing path or a symbolic link becomes a Problem.

    The links on the way to each path are checked below ``root`` (default: the working directory), where
    the repository is, unless ``follow_symlinks``; links found in a folder are always refused."""
    for path in paths:
        link = None if follow_symlinks else symlink_on_the_way(root or Path.cwd(), path)
        if link is not None:
            yield _symlink_problem(link, root)
        elif path.is_dir():
            yield from _folder_files(path, root)
        elif path.is_file():
            yield path
        else:
            yield Problem(str(path), 0, 0, "", "no such file or folder; pass a policy file or a folder of them")


def _bug(document: Document, shown: str, err: Exception) -> Problem:
    """A check that raised is greenops' bug: it costs this document, never the other files."""
    log.debug("internal error checking %s", shown, exc_info=err)
    return Problem(shown, *document.position(""), "", f"greenops could not check this document (internal error: "
                   f"{type(err).__name__}: {err}); please report it (--log-level DEBUG shows the traceback)")


def _document_problems(document: Document, shown: str) -> list[Problem]:
    try:
        return [Problem(shown, line, column, pointer, message)
                for pointer, message, (line, column) in document_findings(document)]
    except BrokenInstallError:
        raise
    except Exception as err:
        return [_bug(document, shown, err)]


def _policy(document: Document, root: Path | None) -> Policy | Problem:
    shown = display_path(document.path, root)
    try:
        return policy_from_data(document.data, Path(shown), document.position("/metadata/name")[0])
    except BrokenInstallError:
        raise
    except Exception as err:
        return _bug(document, shown, err)


def _check_file(path: Path, shown: str) -> tuple[list[Document], list[Problem]]:
    """Valid documents of one file, and every problem found in it."""
    valid: list[Document] = []
    problems: list[Problem] = []
    try:
        for document in read_documents(path):
            found = _document_problems(document, shown)
            problems.extend(found)
            if not found:
                valid.append(document)
    except YamlSyntaxError as err:
        problems.append(Problem(shown, *err.position, "", str(err)))
        valid.clear()
    except OSError as err:
        problems.append(Problem(shown, 0, 0, "", f"cannot read file: {err.strerror}"))
    return valid, problems


def _without_duplicate_names(documents: list[Document], root: Path | None) -> tuple[list[Document], list[Problem]]:
    """Keep the first policy of each name; later ones are problems (names make branches and CronJobs)."""
    first_seen: dict[str, str] = {}
    kept: list[Document] = []
    problems: list[Problem] = []
    for document in documents:
        name = document.data["metadata"]["name"]
        line, column = document.position("/metadata/name")
        shown = display_path(document.path, root)
        if name in first_seen:
            problems.append(Problem(shown, line, column, "/metadata/name",
                                    f"duplicate policy name {name!r} (first defined at {first_seen[name]}); "
                                    "rename one: names must be unique because they name branches and CronJobs"))
        else:
            first_seen[name] = f"{shown}:{line}"
            kept.append(document)
    return kept, problems


def validate_paths(paths: Iterable[Path], relative_to: Path | None = None,
                   follow_symlinks: bool = False) -> ValidationResult:
    """Check every file under ``paths``; valid documents become Policies.

    File names in problems are shown relative to ``relative_to`` (default: the working directory), the
    repository's root: no symbolic link below it is followed. ``follow_symlinks`` lets the paths named
    be links: a Kubernetes ConfigMap mount is made of links the kubelet makes, not the repository.
    """
    valid: list[Document] = []
    problems: list[Problem] = []
    files = 0
    for entry in policy_files(paths, relative_to, follow_symlinks):
        if isinstance(entry, Problem):
            problems.append(entry)
            continue
        files += 1
        file_valid, file_problems = _check_file(entry, display_path(entry, relative_to))
        valid.extend(file_valid)
        problems.extend(file_problems)
    kept, duplicates = _without_duplicate_names(valid, relative_to)
    made = [_policy(document, relative_to) for document in kept]
    policies = tuple(policy for policy in made if isinstance(policy, Policy))
    problems += [problem for problem in made if isinstance(problem, Problem)]
    return ValidationResult(policies, tuple(sorted(problems + duplicates)), files)
