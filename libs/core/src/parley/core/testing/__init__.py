"""Test support shared by every Parley package: the pytest plugin with real Kafka/PostgreSQL fixtures.

Register it once from the repository's root ``conftest.py``::

    pytest_plugins = ["parley.core.testing.fixtures"]
"""
