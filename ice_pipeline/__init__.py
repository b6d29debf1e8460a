"""ice_pipeline: V3 staging data into the ICE-Visa-Rescheduler-Bot production database and MinIO."""

__version__ = "0.1.0"
