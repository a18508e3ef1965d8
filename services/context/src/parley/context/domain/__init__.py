"""The context service's records and rules, free of I/O."""
