"""Errors every layer may raise and every surface knows how to answer."""


class Conflict(Exception):
    """The request is valid but the object changed under it (the API answers 409; pages show the message)."""
