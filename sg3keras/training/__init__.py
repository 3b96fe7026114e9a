"""Training: GAN model, loop, ADA controller, checkpoints (TensorFlow only)."""
