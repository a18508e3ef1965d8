"""``python -m parley.context`` runs the context service."""

import asyncio

from parley.context.app import serve

if __name__ == "__main__":
    asyncio.run(serve())
