"""The web layer: a Bottle app served by waitress."""

from .app import create_app

__all__ = ["create_app"]
