"""Data sets: cards, layout parsers, manifests (and, later, fetch and align)."""
