"""Exceptions raised by causalid.

Every user-facing error is a subclass of :class:`CausalIDError` and carries a one-line
message that names the offending column / environment and says what to do.
"""

from __future__ import annotations


class CausalIDError(Exception):
    """Base class of the errors causalid raises for bad input or impossible requests."""


class DataError(CausalIDError, ValueError):
    """The data cannot be used as given (missing column, NaN, ragged shape, ...)."""


class IdentifiabilityError(CausalIDError):
    """The question asked is not identifiable from the data or design provided."""


class ConvergenceWarning(UserWarning):
    """An engine finished but its diagnostics (r_hat, ESS, divergences, restarts) look bad."""
