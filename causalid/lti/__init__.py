"""The LTI wing: multi-environment linear time-invariant systems.

x_{t+1} = A x_t + B u_t (+ w_t), y_t = C x_t (+ v_t), with (A, B, C) shared by all
environments and inputs that are measured or drawn from a per-environment law (Rajendran et
al., CLeaR 2024).

* :mod:`~causalid.lti.data` — :class:`LTIData`;
* :mod:`~causalid.lti.fit` — :func:`identify_lti` (closed form, maximum likelihood, NUTS,
  Markov parameters / ERA); :mod:`~causalid.lti.subspace` — N4SID, OKID, ERA, order selection;
* :mod:`~causalid.lti.result`, :mod:`~causalid.lti.metrics`, :mod:`~causalid.lti.plots` — the
  result, recovery metrics, figures;
* :mod:`~causalid.lti.identifiability` — :func:`check_lti` and the Fisher information;
* :mod:`~causalid.lti.design`, :mod:`~causalid.lti.sequential`, :mod:`~causalid.lti.signals`,
  :mod:`~causalid.lti.design_result` — the designer of input laws and signals;
* :mod:`~causalid.lti.sweep`, :mod:`~causalid.lti.sbc` — sweep plug-in and calibration problem.
"""
