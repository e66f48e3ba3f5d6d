"""The ``causalid`` command line: :func:`main` (:mod:`causalid.cli.main`)."""

from causalid.cli.main import main

__all__ = ["main"]
