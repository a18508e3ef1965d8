"""Evaluating an NLU model: metrics, the ``parley eval nlu`` runner and its Markdown/HTML report."""
