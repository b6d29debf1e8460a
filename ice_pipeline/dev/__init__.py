"""Development, demo and test tooling: embedded services, the Dagster launcher, demo data.

Nothing in production code imports this package; `moto` (the embedded S3
server) is the optional extra `ice_pipeline[local]`.
"""
