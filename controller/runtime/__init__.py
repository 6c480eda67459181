"""The long-running controller: scheduler, health endpoints, metrics, logs."""
