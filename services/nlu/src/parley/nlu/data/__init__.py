"""Training data in other formats, converted to a project's ``nlu.yml``."""
