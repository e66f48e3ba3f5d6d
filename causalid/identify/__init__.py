"""Identifiability checks and recovery metrics."""

from causalid.identify.metrics import (
    direction_accuracy,
    edge_precision_recall,
    normalized_shd,
    shd,
    structure_metrics,
)

__all__ = ["direction_accuracy", "edge_precision_recall", "normalized_shd", "shd", "structure_metrics"]
