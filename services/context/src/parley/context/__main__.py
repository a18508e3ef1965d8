"""``python -m parley.context`` runs the context service."""

import asyncio

from parley.context.app import serve
from parley.core.errors import ConfigurationError, UnavailableError

if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except (ConfigurationError, UnavailableError) as exc:
        # A setup problem gets one readable line, not a traceback.
        raise SystemExit(f"parley-context: {exc}") from exc
