"""Shared foundations: errors, logging, atomic writes and the stage runner."""
