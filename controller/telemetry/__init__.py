"""Telemetry: where a model's history comes from. Sources return a `History`."""
