"""The designer: choosing the experiments that make a question identifiable.

* :func:`design_lti` — input laws (μ_e, σ²_e) of a multi-environment LTI experiment under
  bounds, with hard identifiability constraints and a choice of criteria
  (:mod:`causalid.lti.design`);
* :func:`design_next` — the next environment's law by expected information gain, with the
  expected shrinkage of every parameter's posterior sd (:mod:`causalid.lti.sequential`);
* :func:`prbs`, :func:`multisine`, :func:`excitation_order`, :func:`choose_signal` —
  measured-input signals and their D-optimal choice (:mod:`causalid.lti.signals`);
* :func:`next_intervention` — the next intervention experiment (which variables, how many
  samples) by expected information gain about the causal graph, with :func:`run_sequential`,
  :func:`replay` and :func:`entropy_heuristic` (:mod:`causalid.design.interventions`);
* :func:`power_analysis` — environments and samples needed by the causal de Finetti engine,
  and which mechanism to vary or which variable to intervene on
  (:mod:`causalid.exchangeable.power`).

The LTI and power designers live in their family's wing; this module gathers them under one
name.
"""

from causalid.design.interventions import (
    InterventionDesign,
    entropy_heuristic,
    next_intervention,
    replay,
    run_sequential,
)
from causalid.exchangeable.power import PowerAnalysis, power_analysis
from causalid.lti.design import CRITERIA, design_criteria, design_lti, moment_error
from causalid.lti.design_result import Design, NextDesign
from causalid.lti.sequential import design_next
from causalid.lti.signals import SignalChoice, choose_signal, excitation_order, multisine, prbs

__all__ = [
    "CRITERIA",
    "Design",
    "InterventionDesign",
    "NextDesign",
    "PowerAnalysis",
    "SignalChoice",
    "choose_signal",
    "design_criteria",
    "design_lti",
    "design_next",
    "entropy_heuristic",
    "excitation_order",
    "moment_error",
    "multisine",
    "next_intervention",
    "power_analysis",
    "prbs",
    "replay",
    "run_sequential",
]
