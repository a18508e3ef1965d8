"""Reply rendering: response templates with safe placeholders, a variant chosen stably per turn."""

from parley.generator.domain.templates import (
    BUILTIN_FALLBACK,
    FALLBACK_RESPONSE,
    Template,
    TemplateError,
    TemplateRenderer,
    parse_template,
    split_words,
)

__all__ = [
    "BUILTIN_FALLBACK",
    "FALLBACK_RESPONSE",
    "Template",
    "TemplateError",
    "TemplateRenderer",
    "parse_template",
    "split_words",
]
