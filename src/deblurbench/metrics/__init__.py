"""Metrics: a registry of exactly specified, versioned definitions, and the scorer."""
