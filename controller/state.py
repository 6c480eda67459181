"""The state directory: workspaces, merge-request records. Writes are atomic (temp file + rename)."""

import os
import tempfile
from pathlib import Path

DEFAULT_STATE_DIR = Path(".greenops")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def merge_request_dir(state_dir: Path) -> Path:
    return state_dir / "merge-requests"
