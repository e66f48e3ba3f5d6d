"""The HMM wing: hidden Markov models over many sequences and environments.

Per environment an HMM's latent process (initial distribution and transitions) is the cause
mechanism and its emissions the effect mechanism; the question is which of them changes
across environments.  Exact inference lives in :mod:`causalid.dynamics.hmm`, the NumPyro
program in :mod:`causalid.models.hmm`.

* :mod:`~causalid.hmm.data` — :class:`SequenceData`;
* :mod:`~causalid.hmm.em` — Baum-Welch over batches of fits, state alignment, bootstrap;
* :mod:`~causalid.hmm.fit` — :func:`fit_hmm` (EM, MAP, NUTS);
* :mod:`~causalid.hmm.result`, :mod:`~causalid.hmm.plots` — the result and its figures;
* :mod:`~causalid.hmm.compare` — :func:`compare_mechanisms`, :func:`select_num_states`;
* :mod:`~causalid.hmm.sweep` — the sweep plug-in.
"""
