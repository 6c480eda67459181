"""The RetrainingPolicy JSON Schema, shipped inside the package."""

import json
from functools import cache
from importlib import resources
from typing import Any

from controller.errors import BrokenInstallError

SCHEMA_FILE = "retrainingpolicy.schema.json"


@cache
def policy_schema() -> dict[str, Any]:
    """Load the schema once per process. A missing schema is a broken install, not a policy problem, so it
    must not surface as an OSError that callers reading policy files would blame on the policy."""
    location = resources.files("controller").joinpath("schemas", SCHEMA_FILE)
    try:
        text = location.read_text(encoding="utf-8")
    except OSError as err:
        raise BrokenInstallError(f"greenops is installed without its schema ({location}: {err.strerror or err}); "
                                 "reinstall greenops") from err
    schema: dict[str, Any] = json.loads(text)
    return schema
