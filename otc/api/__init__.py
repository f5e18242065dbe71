"""Read-only REST API of the OTC tables (mounted at /api/v1/otc/)."""
