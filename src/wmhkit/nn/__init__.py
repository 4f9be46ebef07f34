"""Neural networks (torch): the VGG16 U-Net, its ImageNet weight loader and the segmentation losses."""
