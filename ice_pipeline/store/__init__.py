"""Named SQL operations of each stage: what the assets read from and write to production."""
