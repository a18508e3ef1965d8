"""NLU logic: training data, entity extraction, the intent head and the parser. No I/O here."""
