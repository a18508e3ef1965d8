"""``python -m parley.gateway`` runs the gateway as its own process."""

import asyncio

from parley.gateway.app import serve

if __name__ == "__main__":
    asyncio.run(serve())
