"""Turns a model version into a container build context; the image serves it with the `serving` package."""
