"""The `slipway` command line: drive Slipway's REST API from CI scripts and terminals."""

__version__ = "0.1.0"
