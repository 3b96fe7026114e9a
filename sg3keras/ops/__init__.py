"""Pure tensor ops of sg3keras, written with ``keras.ops`` (no Keras state).

Conventions (docs/CONTRIBUTING.md):
- Images are **NHWC** ``[N, H, W, C]``; batch may be dynamic, H/W/C must be static.
- Padding is ``[x0, x1, y0, y1]`` (x = width axis, then height), or ``[px, py]``, or an int.
- Resampling factors are an int or ``[fx, fy]``.
- Filters: float32, 1-D ``[taps]`` = separable (applied along x, then y), 2-D ``[fh, fw]`` = full,
  None = identity. Ops convolve (flip the filter) unless ``flip_filter=True``.
- Conv weights use the Keras layout ``[kh, kw, in, out]``; styles are ``[N, in]``.
- ``impl="ref"`` is the literal composition of the official reference path; ``impl="fast"`` is
  the polyphase/XLA formulation (TensorFlow: :mod:`sg3keras.ops.xla`, imported lazily);
  ``impl="auto"`` picks per geometry the fastest on this machine (:mod:`sg3keras.ops.autotune`).

Symbol table:

=================================  ==========================================================
``bias_act``                       bias + activation + gain + clamp
``upfirdn2d``                      upsample (zero insertion) -> pad -> FIR -> downsample
``filter2d``                       same-size FIR filtering
``upsample2d`` / ``downsample2d``  resampling with an interpolation filter
``filtered_lrelu``                 bias -> up-FIR -> lrelu*gain -> clamp -> down-FIR (ref/fast/...)
``modulated_conv2d``               StyleGAN3 modulated/demodulated conv (unfused form)
``design_lowpass_filter``          Kaiser-windowed sinc / radial jinc filter taps (NumPy)
``setup_filter``                   normalise / flip / scale a filter (NumPy)
``assert_shape``                   static shape contract, checked at trace time
=================================  ==========================================================
"""

from .bias_act import bias_act
from .filtered_lrelu import filtered_lrelu
from .filters import design_lowpass_filter, setup_filter
from .misc import assert_shape
from .modulated_conv import modulated_conv2d
from .upfirdn2d import downsample2d, filter2d, upfirdn2d, upsample2d

__all__ = [
    "assert_shape",
    "bias_act",
    "design_lowpass_filter",
    "downsample2d",
    "filter2d",
    "filtered_lrelu",
    "modulated_conv2d",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]
