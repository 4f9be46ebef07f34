"""Models (torch), below ``train`` and ``infer``: model folders and kinds (:mod:`~wmhkit.models.folder`),
the network registry (:mod:`~wmhkit.models.networks`), one predictor per kind behind one protocol
(:mod:`~wmhkit.models.predictors`), and the GP-Unet input box (:mod:`~wmhkit.models.box`).

The data folder ``starter/`` is the bundled model (:func:`wmhkit.infer.starter.starter_model_dir`).
"""
