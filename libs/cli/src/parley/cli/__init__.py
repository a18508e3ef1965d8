"""The ``parley`` command line: run, serve, train, chat, stack."""
