"""Declared generative models (NumPyro programs), installed as ``causalid.models``."""
