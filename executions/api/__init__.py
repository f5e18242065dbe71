"""The executions REST API (DRF)."""
