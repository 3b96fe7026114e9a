"""Minibatch standard deviation (the discriminator epilogue's ``MinibatchStdLayer``), NHWC.

The layer of Alias-Free GAN Appendix F, as in the official code: groups are *strided* -- with
``G = min(group_size, N)`` and ``n = N / G``, group ``j`` holds samples ``{j, j + n, j + 2n, ...}``
(the group-member index is the outer axis of the batch reshape).
"""

from keras import ops

__all__ = ["minibatch_std"]


def minibatch_std(x, group_size=4, num_channels=1):
    """Append ``num_channels`` feature maps holding the per-group feature standard deviation.

    Steps:
    1. ``G = min(group_size, N)``; reshape ``x`` to ``[G, N/G, H, W, F, C/F]`` (channel
       ``c = f * C/F + j``, as in the official NCHW reshape).
    2. Subtract the mean over the group axis, square, average over the group, ``sqrt(. + 1e-8)``.
    3. Average over ``H, W, C/F`` -> ``[N/G, F]``.
    4. Broadcast back to ``[N, H, W, F]`` (sample ``i`` gets the statistic of group ``i mod N/G``)
       and concatenate after the ``C`` input channels.

    Args:
        x: ``[N, H, W, C]`` (N may be dynamic under ``tf.function``; must be a multiple of G).
        group_size: maximum group size. Default 4.
        num_channels: number of statistics ``F`` (must divide C). Default 1.
    Returns:
        ``[N, H, W, C + F]`` in ``x.dtype``.
    """
    if len(x.shape) != 4 or any(s is None for s in x.shape[1:]):
        raise ValueError(f"minibatch_std: x must be NHWC [N, H, W, C] with static H, W, C, "
                         f"got shape {list(x.shape)}")
    group_size, num_channels = int(group_size), int(num_channels)
    n_static, h, w, c = x.shape
    if group_size < 1 or num_channels < 1 or c % num_channels:
        raise ValueError(f"minibatch_std: need group_size >= 1 and num_channels >= 1 dividing "
                         f"C={c}, "
                         f"got group_size={group_size}, num_channels={num_channels}")
    if n_static is not None:
        g = min(group_size, int(n_static))
        if n_static % g:
            raise ValueError(f"minibatch_std: batch size {n_static} is not divisible by the group "
                             f"size {g} (min(group_size={group_size}, N))")
    else:
        g = ops.minimum(group_size, ops.shape(x)[0])
    f = num_channels
    x6 = ops.reshape(x, [g, -1, h, w, f, c // f])                     # [G, n, H, W, F, c]
    y = ops.cast(x6, "float32")
    y = y - ops.mean(y, axis=0, keepdims=True)
    y = ops.sqrt(ops.mean(ops.square(y), axis=0, keepdims=True) + 1e-8)  # [1, n, H, W, F, c]
    y = ops.mean(y, axis=(2, 3, 5), keepdims=True)                    # [1, n, 1, 1, F, 1]
    y = y + ops.zeros_like(x6[..., :1], dtype="float32")            # [G, n, H, W, F, 1]
    y = ops.reshape(y, [-1, h, w, f])                                 # [N, H, W, F]
    return ops.concatenate([x, ops.cast(y, x.dtype)], axis=-1)
