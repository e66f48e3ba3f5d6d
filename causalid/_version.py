"""The version of causalid (one place, read by the package and by stored results)."""

__version__ = "0.1.0"
