"""The designer: choosing diverse intervention signals (science.md §4).

* :func:`design_lti` — input laws (μ_e, σ²_e) of a multi-environment LTI experiment under
  bounds, with hard identifiability constraints and a choice of criteria
  (:mod:`causalid.design.lti`);
* :func:`design_next` — the next environment's law by expected information gain, with the
  expected shrinkage of every parameter's posterior sd (:mod:`causalid.design.sequential`);
* :func:`prbs`, :func:`multisine`, :func:`excitation_order`, :func:`choose_signal` —
  measured-input signals and their D-optimal choice (:mod:`causalid.design.signals`);
* :func:`power_analysis` — environments and samples needed by the causal de Finetti engine,
  and which mechanism to vary or which variable to intervene on (:mod:`causalid.design.power`).
"""

from causalid.design.lti import CRITERIA, design_criteria, design_lti, lti_fisher, moment_error
from causalid.design.power import PowerAnalysis, power_analysis
from causalid.design.result import Design, NextDesign
from causalid.design.sequential import design_next
from causalid.design.signals import SignalChoice, choose_signal, excitation_order, multisine, prbs

__all__ = [
    "CRITERIA",
    "Design",
    "NextDesign",
    "PowerAnalysis",
    "SignalChoice",
    "choose_signal",
    "design_criteria",
    "design_lti",
    "design_next",
    "excitation_order",
    "lti_fisher",
    "moment_error",
    "multisine",
    "power_analysis",
    "prbs",
]
