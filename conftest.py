"""Root conftest: registers Parley's shared pytest plugin (real Kafka/PostgreSQL fixtures) everywhere."""

pytest_plugins = ["parley.core.testing.fixtures"]
