"""Adam as ``torch.optim.Adam`` computes it, the optimizer of the official training loop.

Keras's ``Adam`` and PyTorch's differ in two ways that change GAN training with the official
hyperparameters (``beta_1 = 0``, ``eps = 1e-8``):

* **Where eps goes.** Keras divides by ``sqrt(v_t) + eps`` and folds the second-moment bias
  correction into the step size, i.e. ``eps`` is effectively ``eps * sqrt(1 - beta_2^t)`` -- at
  ``t = 1`` with ``beta_2 = 0.99`` ten times smaller relative to the bias-corrected moment.
  PyTorch divides by ``sqrt(v_t) / sqrt(1 - beta_2^t) + eps``. Elements with ``|g| <~ 1e-6``
  move differently.
* **Parameters without a gradient.** PyTorch skips a parameter whose ``grad`` is None entirely:
  no moment decay and no step count (D's output bias in the R1 phase, ``Dreg``). Keras counts
  one global ``iterations`` for the bias correction. :class:`TorchAdam` keeps one step counter
  per variable and updates only the variables passed to ``apply``.

The update for each variable with gradient ``g`` and its own step ``t`` (PyTorch's single-tensor
CPU path; the bias corrections are Python floats there, float64 here)::

    t   <- t + 1
    m   <- lerp(m, g, 1 - beta_1)                 # = g when beta_1 = 0
    v   <- beta_2 * v + (1 - beta_2) * g^2
    p   <- p - lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + eps)

The learning rate of the lazily-regularised phases (``lr * k/(k+1)``, ``beta ** (k/(k+1))``) is
set by the caller (:meth:`sg3keras.training.gan.StyleGAN.make_optimizers`).
"""

import keras
from keras import ops

from sg3keras.ops.misc import lerp

__all__ = ["TorchAdam"]


@keras.saving.register_keras_serializable(package="sg3keras")
class TorchAdam(keras.optimizers.Optimizer):
    """Adam with PyTorch's epsilon placement and per-variable step counts.

    Args:
        learning_rate: step size (float or schedule). Default 0.001 (PyTorch's default).
        beta_1, beta_2: moment decay rates. Defaults 0.9, 0.999.
        epsilon: added to the bias-corrected ``sqrt(v)``. Default 1e-8.
        name, **kwargs: passed to :class:`keras.optimizers.Optimizer`.

    Example:
        >>> opt = TorchAdam(learning_rate=0.0025, beta_1=0.0, beta_2=0.99)
        >>> opt.apply(grads, model.trainable_variables)   # None-free lists; skip absent grads
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 name="torch_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._exp_avg, self._exp_avg_sq, self._steps = [], [], []
        for var in var_list:
            self._exp_avg.append(self.add_variable_from_reference(var, "exp_avg"))
            self._exp_avg_sq.append(self.add_variable_from_reference(var, "exp_avg_sq"))
            self._steps.append(self.add_variable(
                shape=(), dtype="int64", initializer="zeros",
                name=f"{var.path.replace('/', '_')}_step" if hasattr(var, "path") else "step"))

    def state_of(self, variable):
        """``(exp_avg, exp_avg_sq, step)`` variables of one model variable (for inspection)."""
        i = self._get_variable_index(variable)
        return self._exp_avg[i], self._exp_avg_sq[i], self._steps[i]

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        m, v, step = self._exp_avg[i], self._exp_avg_sq[i], self._steps[i]
        dtype = variable.dtype
        g = ops.cast(gradient, dtype)
        t = ops.cast(step, "int64") + 1
        self.assign(step, t)

        # torch.lerp rounding: beta_1 = 0 stores the gradient exactly.
        m_new = lerp(ops.convert_to_tensor(m), g, 1.0 - self.beta_1)
        self.assign(m, m_new)
        v_new = v * self.beta_2 + (1.0 - self.beta_2) * g * g
        self.assign(v, v_new)

        tf64 = ops.cast(t, "float64")
        bias1 = 1.0 - ops.power(ops.cast(self.beta_1, "float64"), tf64)
        bias2_sqrt = ops.sqrt(1.0 - ops.power(ops.cast(self.beta_2, "float64"), tf64))
        step_size = ops.cast(ops.cast(learning_rate, "float64") / bias1, dtype)
        denom = ops.sqrt(v_new) / ops.cast(bias2_sqrt, dtype) + self.epsilon
        self.assign_sub(variable, step_size * (m_new / denom))

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        return config
