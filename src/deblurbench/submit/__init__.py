"""Submissions: restored images for a data set split, a method folder, the papers' numbers."""
