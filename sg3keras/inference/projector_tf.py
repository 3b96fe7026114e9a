"""TensorFlow-only part of the projector: one compiled Adam step with a per-step learning rate.

The loss, the variables and what happens after each update are plain ``keras.ops`` code in
:mod:`sg3keras.inference.projector`; this module only takes the gradient
(``tf.GradientTape``) and compiles the step (``tf.function``), as ``sg3keras.training.gan`` does
for training.
"""

import tensorflow as tf

__all__ = ["make_step"]


def make_step(variables, loss_fn, optimizer, after_update=None):
    """A compiled ``step(learning_rate, *args) -> aux`` that minimises ``loss_fn`` by one update.

    Steps: (1) ``loss, aux = loss_fn(*args)`` under a gradient tape; (2) gradients of ``loss``
    with respect to ``variables``; (3) set the optimizer's learning rate and apply them; (4) call
    ``after_update()`` (e.g. re-normalising noise buffers).

    Args:
        variables: list of ``keras.Variable`` to optimise (the optimizer is built for them).
        loss_fn: ``callable(*args) -> (scalar loss, aux)``; traceable.
        optimizer: a Keras optimizer (the projector uses ``TorchAdam``).
        after_update: optional traceable ``callable()`` run after the update.

    Returns:
        the compiled step function.
    """
    variables = list(variables)
    optimizer.build(variables)

    @tf.function
    def step(learning_rate, *args):
        with tf.GradientTape() as tape:
            loss, aux = loss_fn(*args)
        grads = tape.gradient(loss, variables)
        optimizer.learning_rate = learning_rate
        optimizer.apply(grads, variables)
        if after_update is not None:
            after_update()
        return aux

    return step
