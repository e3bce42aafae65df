"""Annotation stages: per-patch blur levels (PBA) that supervise and stratify the benchmark."""
