"""Silver labels: per-scan consensus of the bronze masks (STAPLE or majority vote).

See :mod:`wmhkit.fusion.stage` for the stage over a manifest.
"""
