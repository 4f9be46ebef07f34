"""Bronze labels: wmhkit's own classical WMH segmenters and imports of external tools' masks.

See :mod:`wmhkit.bronze.stage` for the stage over a manifest and
:data:`wmhkit.bronze.methods.METHODS` for the methods.
"""
