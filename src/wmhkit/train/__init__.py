"""Training: checkpoints, reproducibility, epoch logs and the stage trainers built on them."""
