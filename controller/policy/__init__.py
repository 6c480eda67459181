"""Policy resources: loading with line numbers, validation and the typed `Policy`."""
