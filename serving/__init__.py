"""The serving runtime copied into every model image. Standard library and numpy only: no Django."""
