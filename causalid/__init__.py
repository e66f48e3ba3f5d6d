"""causalid: probabilistic programming for causal and dynamical identification.

Data come in environments (conditions, batches, labs).  Inside an environment samples are
exchangeable; across environments the mechanisms' parameters change, and that variability
identifies causal structure.  The front doors:

* :func:`load`, :class:`MultiEnvData` — multi-environment data with clear validation;
* :func:`discover`, :func:`discover_batch` — causal graphs by the causal de Finetti tests
  (``method="cdf"``) or the Bayesian exchangeable model (``method="bayes"``);
* :func:`fit_parameters` — NUTS posterior of a chosen DAG's mechanism parameters;
* :class:`LTIData`, :func:`identify_lti`, :func:`check_lti` — multi-environment LTI systems:
  identification (closed form, maximum likelihood, NUTS, Markov/ERA) and identifiability;
* :class:`SequenceData`, :func:`fit_hmm`, :func:`compare_mechanisms` — multi-environment hidden
  Markov models: exact inference, EM / MAP / NUTS fits, which mechanism changed;
* :func:`structure_metrics` and friends — SHD, normalised SHD, precision/recall.

Importing causalid switches JAX to 64-bit floats (``jax_enable_x64``): ranks, condition
numbers and long likelihood sums need them.  float32 inputs are promoted.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)


def _models_from_checkout() -> None:
    """Make ``causalid.models`` importable when running from a source checkout.

    An installed causalid carries ``models/`` as its sub-package ``causalid.models`` (see
    pyproject.toml); in a checkout the folder sits beside ``causalid/`` instead.
    """
    import importlib.util
    import sys
    from pathlib import Path

    if "causalid.models" in sys.modules or importlib.util.find_spec("causalid.models") is not None:
        return
    folder = Path(__file__).resolve().parent.parent / "models"
    if not (folder / "__init__.py").exists():
        return
    spec = importlib.util.spec_from_file_location(
        "causalid.models", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["causalid.models"] = module
    spec.loader.exec_module(module)


_models_from_checkout()

from causalid.data import MultiEnvData, load  # noqa: E402
from causalid.data.lti import LTIData  # noqa: E402
from causalid.dynamics.system import InputDesign, LTISystem  # noqa: E402
from causalid.identify.lti import LTIIdentifiabilityReport, check_lti, fisher_information  # noqa: E402
from causalid.identify.lti_metrics import amari_distance, eigenvalue_error, mcc, relative_error  # noqa: E402
from causalid.infer.lti import identify_lti  # noqa: E402
from causalid.infer.lti_result import LTIResult  # noqa: E402
from causalid.infer.subspace import select_order  # noqa: E402
from causalid.errors import CausalIDError, ConvergenceWarning, DataError, IdentifiabilityError  # noqa: E402
from causalid.identify.metrics import (  # noqa: E402
    direction_accuracy,
    edge_precision_recall,
    normalized_shd,
    shd,
    structure_metrics,
)
from causalid.infer.discover import diagnose_mechanisms, discover, discover_batch  # noqa: E402
from causalid.data.sequences import SequenceData  # noqa: E402
from causalid.infer.hmm import fit_hmm  # noqa: E402
from causalid.infer.hmm_result import HMMResult  # noqa: E402
from causalid.infer.hmm_compare import MechanismReport, compare_mechanisms, select_num_states  # noqa: E402
from causalid.infer.result import StructureResult  # noqa: E402
from causalid.design import Design, design_lti, design_next  # noqa: E402

__version__ = "0.1.0"


def fit_parameters(*args, **kwargs):
    """NUTS posterior of a DAG's mechanism parameters; see :func:`causalid.infer.posterior.fit_parameters`."""
    from causalid.infer.posterior import fit_parameters as _fit

    return _fit(*args, **kwargs)


__all__ = [
    "HMMResult",
    "MechanismReport",
    "compare_mechanisms",
    "select_num_states",
    "InputDesign",
    "SequenceData",
    "fit_hmm",
    "LTIData",
    "LTIIdentifiabilityReport",
    "LTIResult",
    "LTISystem",
    "amari_distance",
    "check_lti",
    "eigenvalue_error",
    "fisher_information",
    "identify_lti",
    "mcc",
    "relative_error",
    "select_order",
    "CausalIDError",
    "ConvergenceWarning",
    "DataError",
    "IdentifiabilityError",
    "MultiEnvData",
    "StructureResult",
    "diagnose_mechanisms",
    "direction_accuracy",
    "discover",
    "discover_batch",
    "edge_precision_recall",
    "fit_parameters",
    "load",
    "normalized_shd",
    "shd",
    "structure_metrics",
    "Design",
    "design_lti",
    "design_next",
    "__version__",
]
