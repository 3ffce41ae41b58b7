"""Turning a model version into an image: the build context, wheels, the Dockerfile, the Docker engine.

A library with no Django (the build enforces it): deployments.runners.builds drives it for one build.
"""
