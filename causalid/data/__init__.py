"""Multi-environment data: the container, loading and validation."""

from causalid.data.container import MultiEnvData
from causalid.data.io import load, read_table

__all__ = ["MultiEnvData", "load", "read_table"]
