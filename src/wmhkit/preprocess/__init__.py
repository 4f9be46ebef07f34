"""Preprocessing: header checks, canonical reorientation, N4, brain mask, normalisation, crop.

Import the submodules directly (``from wmhkit.preprocess.pipeline import prepare_manifest``);
this package imports nothing itself so that its modules stay independent.
"""
