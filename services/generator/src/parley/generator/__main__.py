"""``python -m parley.generator`` runs the generator service."""

import asyncio

from parley.generator.app import serve

if __name__ == "__main__":
    asyncio.run(serve())
