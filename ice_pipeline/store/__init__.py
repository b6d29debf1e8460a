"""SQL of the pipeline's stages, as named constants (one module per stage)."""
