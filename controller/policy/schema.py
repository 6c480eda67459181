"""The RetrainingPolicy JSON Schema, shipped inside the package."""

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "retrainingpolicy.schema.json"


@cache
def policy_schema() -> dict[str, Any]:
    """Load the schema once per process."""
    text = resources.files("controller").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
