"""The audit log: who changed what, when, and from which address (one row per change)."""
