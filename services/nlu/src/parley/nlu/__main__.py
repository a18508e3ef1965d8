"""``python -m parley.nlu``: run the NLU service."""

import asyncio

from parley.nlu.app import serve

if __name__ == "__main__":
    asyncio.run(serve())
