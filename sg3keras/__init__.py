"""sg3keras: StyleGAN3 for TensorFlow 2 / Keras 3."""
