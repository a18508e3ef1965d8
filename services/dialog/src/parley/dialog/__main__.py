"""``python -m parley.dialog`` runs the dialog service."""

import asyncio

from parley.dialog.app import serve

if __name__ == "__main__":
    asyncio.run(serve())
