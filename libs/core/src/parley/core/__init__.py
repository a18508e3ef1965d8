"""Parley's shared core: what every service needs and no service should write again."""
