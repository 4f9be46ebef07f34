"""Neural networks (torch): the VGG16 U-Net and its ImageNet weight loader, the GP-Unet, the segmentation
losses, slice-wise (2.5D) inference over a brain box and the fusion of plane probabilities.

Networks are built from ``model.yaml`` entries by the registry :mod:`wmhkit.models.networks`.
"""
