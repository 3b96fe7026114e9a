"""What training, metrics and inference share below them (nothing is imported here).

* :mod:`sg3keras.runtime.strategy`: choosing a ``tf.distribute`` strategy
  (:func:`make_strategy`, :func:`is_multi_worker`, :func:`is_chief`, ...; TensorFlow only);
* :mod:`sg3keras.runtime.optimizers`: :class:`TorchAdam`, Adam with ``torch.optim.Adam``
  semantics (the optimizer of training and of the projector).
"""
