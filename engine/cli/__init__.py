"""The ``creditflow`` command line and the demo: the outermost room, which may use every other
one and the load generator in loadtest/."""

from engine.cli.main import main

__all__ = ["main"]
