"""causalid: probabilistic programming for causal and dynamical identification.

Data come in environments (conditions, batches, labs).  Inside an environment samples are
exchangeable; across environments the mechanisms' parameters change, and that variability
identifies causal structure.  One wing per model family, each with its front doors:

* exchangeable data (:mod:`causalid.exchangeable`): :func:`load`, :class:`MultiEnvData`,
  :func:`discover`, :func:`discover_batch` (causal de Finetti tests, ``method="cdf"``, or the
  Bayesian exchangeable model, ``method="bayes"``), :func:`fit_parameters`,
  :func:`diagnose_mechanisms`, :func:`structure_metrics` and friends, and
  :func:`next_intervention` (the next intervention experiment, :mod:`causalid.design`);
* multi-environment LTI systems (:mod:`causalid.lti`): :class:`LTIData`, :func:`identify_lti`,
  :func:`check_lti`, :func:`select_order`, :func:`design_lti`, :func:`design_next`;
* hidden Markov models (:mod:`causalid.hmm`): :class:`SequenceData`, :func:`fit_hmm`, :class:`HMMParams`,
  :func:`compare_mechanisms`, :func:`select_num_states`;
* simulation sweeps over all of them: :func:`load_sweep`, :func:`run_sweep`,
  :func:`load_results`, :func:`write_report` (:mod:`causalid.verify`).

Importing causalid changes no global setting: JAX's configuration is left as it was, and
the numerics that need 64-bit floats get them inside each call (see :mod:`causalid._x64` for
what that means when mixing causalid with float32 JAX code).
"""

from causalid._io import read_table
from causalid._version import __version__
from causalid.design import Design, InterventionDesign, design_lti, design_next, next_intervention
from causalid.dynamics.system import InputDesign, LTISystem
from causalid.errors import CausalIDError, ConvergenceWarning, DataError, IdentifiabilityError
from causalid.exchangeable.data import MultiEnvData, load
from causalid.exchangeable.discover import diagnose_mechanisms, discover, discover_batch
from causalid.exchangeable.metrics import (
    direction_accuracy,
    edge_precision_recall,
    normalized_shd,
    shd,
    structure_metrics,
)
from causalid.exchangeable.posterior import fit_parameters
from causalid.exchangeable.result import StructureResult
from causalid.families import load_sweep, parse_sweep, run_sweep
from causalid.hmm.compare import MechanismReport, StateSelection, compare_mechanisms, select_num_states
from causalid.hmm.data import SequenceData
from causalid.hmm.fit import fit_hmm
from causalid.hmm.residuals import ResidualCheck
from causalid.hmm.result import HMMResult
from causalid.hmm.starts import DegenerateFitWarning
from causalid.lti.data import LTIData
from causalid.lti.fisher import fisher_information
from causalid.lti.fit import identify_lti
from causalid.lti.identifiability import LTIIdentifiabilityReport, check_lti
from causalid.lti.metrics import amari_distance, eigenvalue_error, mcc, relative_error
from causalid.lti.result import LTIResult
from causalid.lti.subspace import select_order
from causalid.lti.validation import LTIComparison, LTIOrderSelection
from causalid.models.hmm import HMMParams
from causalid.verify import load_results, write_report

__all__ = [
    "CausalIDError",
    "ConvergenceWarning",
    "DataError",
    "DegenerateFitWarning",
    "Design",
    "HMMParams",
    "HMMResult",
    "IdentifiabilityError",
    "InterventionDesign",
    "InputDesign",
    "LTIData",
    "LTIIdentifiabilityReport",
    "LTIResult",
    "LTIComparison",
    "LTIOrderSelection",
    "LTISystem",
    "MechanismReport",
    "MultiEnvData",
    "ResidualCheck",
    "SequenceData",
    "StateSelection",
    "StructureResult",
    "__version__",
    "amari_distance",
    "check_lti",
    "compare_mechanisms",
    "design_lti",
    "design_next",
    "diagnose_mechanisms",
    "direction_accuracy",
    "discover",
    "discover_batch",
    "edge_precision_recall",
    "eigenvalue_error",
    "fisher_information",
    "fit_hmm",
    "fit_parameters",
    "identify_lti",
    "load",
    "load_results",
    "load_sweep",
    "mcc",
    "next_intervention",
    "normalized_shd",
    "parse_sweep",
    "read_table",
    "relative_error",
    "run_sweep",
    "select_num_states",
    "select_order",
    "shd",
    "structure_metrics",
    "write_report",
]
