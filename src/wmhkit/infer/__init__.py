"""Inference (torch): model folders, slice-wise 2.5D prediction, fusion, WMH volumes, ``wmhkit predict``.

Modules
-------
model_folder
    Read and validate a model folder (``model.yaml``, ``weights/*.pt``,
    ``provenance.json``), build its networks, compute its hash.
planes
    One plane's network run slice by slice over the brain box of a prepared scan.
fusion
    Fuse the per-plane probability maps and threshold them.
volumes
    WMH volume, % of intracranial volume, periventricular/deep split, lesion count.
predict
    The ``predict`` stage: prepare each scan, segment, map back to native space, write
    masks, probability maps, sidecars and ``volumes.csv``.
"""
