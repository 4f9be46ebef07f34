"""Inference (torch): the ``predict`` stage and the scoring of models on prepared manifests.

Model folders, networks and the per-kind predictors live below, in :mod:`wmhkit.models`.
"""
