"""Pure logic: normalization, identity resolution, survivorship. No Dagster, no database."""
