"""Thin DVC stage scripts, one per stage; run as ``python -m stages.<name>``."""
