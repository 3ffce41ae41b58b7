"""Reads, one module per subject, each restricted to what the user may see (services write, these read)."""
