"""Inference engines: structure discovery (causal de Finetti tests, Bayesian DAG posterior)
and parameter posteriors."""
