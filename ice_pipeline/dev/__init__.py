"""Development tooling: embedded services, demo and test data generators."""
