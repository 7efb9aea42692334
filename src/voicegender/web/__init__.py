"""Web page and JSON API (FastAPI + a plain HTML/JS page): ``voicegender serve``."""

from .app import create_app

__all__ = ["create_app"]
