"""The exchangeable wing: causal structure from exchangeable, non-i.i.d. multi-environment data.

Inside an environment samples are exchangeable; across environments the mechanisms'
parameters are redrawn (causal de Finetti: Guo et al., NeurIPS 2023; independent mechanisms
that may vary one at a time: Reizinger et al., ICLR 2025).

* :mod:`~causalid.exchangeable.data` — :class:`MultiEnvData` and :func:`load`;
* :mod:`~causalid.exchangeable.cdf`, :mod:`~causalid.exchangeable.pairs` — the causal de
  Finetti conditional-independence programs on pairs of samples;
* :mod:`~causalid.exchangeable.bayes`, :mod:`~causalid.exchangeable.dags` — the DAG posterior
  of the exchangeable hierarchical model;
* :mod:`~causalid.exchangeable.discover` — the front doors :func:`discover`,
  :func:`discover_batch`, :func:`diagnose_mechanisms`;
* :mod:`~causalid.exchangeable.posterior` — NUTS posteriors of a DAG's mechanism parameters;
* :mod:`~causalid.exchangeable.result`, :mod:`~causalid.exchangeable.metrics`,
  :mod:`~causalid.exchangeable.plots` — the result, SHD and friends, graph figures;
* :mod:`~causalid.exchangeable.power` — power analysis of the design of such experiments;
* :mod:`~causalid.exchangeable.simulate`, :mod:`~causalid.exchangeable.sweep`,
  :mod:`~causalid.exchangeable.sbc` — simulation, sweep plug-ins and calibration problems.
"""
