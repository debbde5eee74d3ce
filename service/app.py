"""The production entry point, ``gunicorn -c service/gunicorn.conf.py "service.app:create_app()"``:
the HTTP front end's application factory (``service.http.app``)."""

from .http.app import create_app

__all__ = ["create_app"]
