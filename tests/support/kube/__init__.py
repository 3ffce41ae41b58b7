"""An emulated Kubernetes API server and controllers, over real HTTP, for the tests (see README.md)."""
