"""Admin registrations for the ledger (the operations console grows here)."""
