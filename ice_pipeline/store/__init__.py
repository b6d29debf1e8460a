"""Named SQL of each stage and the small functions that run it (no SQL assembled elsewhere)."""
