"""Turns a model version into a container build context, and the runtime that serves it inside."""
