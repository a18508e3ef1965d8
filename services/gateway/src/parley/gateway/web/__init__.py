"""The self-contained web chat page served at ``/`` (package data, read once when the app is built)."""
