"""The GAN as a ``keras.Model``: ``gan.compile(...)`` + ``gan.fit(dataset)`` (TensorFlow only).

One ``fit`` step is one iteration of the official training loop (REFERENCE.md §4.2-4.3):

* ``Gmain``: non-saturating G loss ``softplus(-D(G(z)))``;
* ``Greg`` (stylegan2 only, every ``g_reg_interval`` steps): path-length penalty x interval;
* ``Dmain``: ``softplus(D(G(z))) + softplus(-D(x))``, G run with ``update_emas=True`` (this is
  where ``w_avg`` and ``magnitude_ema`` move, as in the official loop);
* ``Dreg`` (every ``d_reg_interval`` = 16 steps): R1 ``sum(grad^2) * gamma/2 * interval``;
* G_ema: ``p_ema <- p + beta (p_ema - p)`` with the official ramp-up; buffers are copied;
* ADA: the sign of every real-image logit is accumulated and ``p`` adjusted every 4 steps.

Lazy regularisation uses separate compiled step functions selected per step in Python (see
:mod:`sg3keras.training.compat`): an optimizer step must not sit inside ``tf.cond`` under a
``tf.distribute`` strategy. Per-sample losses are divided by the *global* batch
(``tf.nn.compute_average_loss``) because Keras sums gradients across replicas. All randomness
of a step is drawn statelessly from ``(seed, step, phase)`` for the global batch and sliced per
replica, so a 2-replica run draws the same latents as a single-replica run of the same batch and
a resumed run draws the same latents as an uninterrupted one.

Gradient accumulation (``TrainConfig.batch_gpu``, train.py ``--batch-gpu``): each replica runs
every phase in rounds of ``batch_gpu`` samples, sums the gradients of the rounds and takes one
optimizer step per phase. Round k of replica r uses the same latent rows as the single-pass run,
so only float rounding changes -- except where the official loop itself depends on the round
size: ``update_emas`` (``w_avg``, ``magnitude_ema``) and ``pl_mean`` move once per round, path
length uses ``batch_gpu // pl_batch_shrink`` samples per round, and D's minibatch-stddev groups
samples within one round. The official loop sums per-round *means* (``rounds`` x the batch
gradient, which Adam's scale invariance absorbs up to ``eps``); here every loss stays averaged
over the global batch, so ``batch_gpu`` changes memory use, not the gradient.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from sg3keras import losses
from sg3keras.config import LossConfig, TrainConfig
from sg3keras.ops.upfirdn2d import filter2d
from sg3keras.training import compat
from sg3keras.training.ada import ada_adjust

__all__ = ["StyleGAN", "blur_sigma_at", "dynamic_blur"]

_PH_GMAIN, _PH_GREG, _PH_DMAIN, _PH_DREG, _PH_MIX = 1, 2, 3, 4, 5


def blur_sigma_at(cur_nimg, blur_init_sigma, blur_fade_kimg):
    """Official linear fade: ``max(1 - nimg / (fade_kimg * 1e3), 0) * init`` (0 if no fade)."""
    if blur_fade_kimg <= 0 or blur_init_sigma <= 0:
        return tf.constant(0.0, tf.float32)
    t = 1.0 - tf.cast(cur_nimg, tf.float32) / (blur_fade_kimg * 1e3)
    return tf.maximum(t, 0.0) * blur_init_sigma


def dynamic_blur(x, sigma, max_sigma):
    """The D-input blur of the -r config with a time-varying sigma, in a fixed-size graph.

    Kernel ``k(t) = 2^(-(t/sigma)^2)`` for integer ``|t| <= floor(3 sigma)``, zero beyond, normalised
    to sum 1 and applied separably with zero padding (same size). The support is padded to the
    largest radius ``floor(3 max_sigma)``; the zero taps make this identical to the official
    variable-size kernel, and ``floor(3 sigma) == 0`` gives the identity (no blur), as official.
    """
    radius = int(math.floor(max_sigma * 3))
    if radius <= 0:
        return x
    t = tf.range(-radius, radius + 1, dtype=tf.float32)
    safe = tf.maximum(sigma, 1e-8)
    k = tf.pow(2.0, -tf.square(t / safe))
    k = tf.where(tf.abs(t) <= tf.floor(sigma * 3), k, tf.zeros_like(k))
    k = k / tf.reduce_sum(k)
    return filter2d(x, k)   # filter2d pads by the filter radius: same-size output


def _sanitize(grads):
    """``nan_to_num(nan=0, posinf=1e5, neginf=-1e5)`` as the official loop does before a step."""
    out = []
    for g in grads:
        if g is None:
            out.append(None)
            continue
        g = tf.where(tf.math.is_nan(g), tf.zeros_like(g), g)
        out.append(tf.clip_by_value(g, -1e5, 1e5) if g.dtype.is_floating else g)
    return out


def _add_grads(a, b):
    """Sum of two gradients, either of which may be None (no path to the variable)."""
    if a is None or b is None:
        return b if a is None else a
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


@keras.saving.register_keras_serializable(package="sg3keras")
class StyleGAN(keras.Model):
    """G, D and G_ema trained with the official StyleGAN2/3 objective under ``fit``.

    Args:
        G, D, G_ema: generator, discriminator and the EMA copy of G (same architecture as G).
        augment_pipe: optional :class:`sg3keras.augment.AugmentPipe` applied to every D input.
        loss_config: :class:`sg3keras.config.LossConfig` (gamma, blur, mixing, path length).
        train_config: :class:`sg3keras.config.TrainConfig` (global batch, ``batch_gpu`` rounds,
            EMA, lazy-reg intervals, ADA target/interval/speed).
        label_table: ``[L, c_dim]`` labels of the dataset; generated images are conditioned on
            labels drawn uniformly from it (as official). None for unconditional models.
        seed: seed of the stateless per-step random draws.

    Example:
        >>> gan = StyleGAN(G, D, G_ema, train_config=TrainConfig(batch=8))
        >>> gan.compile(*StyleGAN.make_optimizers(TrainConfig(batch=8)))
        >>> gan.fit(dataset, steps_per_epoch=10)
    """

    def __init__(self, G, D, G_ema, augment_pipe=None, loss_config=LossConfig(),
                 train_config=TrainConfig(), label_table=None, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.G, self.D, self.G_ema = G, D, G_ema
        self.augment_pipe = augment_pipe
        self.loss_config = loss_config
        self.train_config = train_config
        self.global_batch = int(train_config.batch)
        self.seed = int(seed)
        self.label_table = None if label_table is None or np.size(label_table) == 0 \
            else np.asarray(label_table, np.float32)
        self.c_dim = int(G.c_dim)
        self.ada_enabled = augment_pipe is not None and train_config.aug == "ada"
        counter = dict(shape=(), trainable=False, aggregation="only_first_replica")
        self.step = self.add_weight(name="step", dtype="int64", initializer="zeros", **counter)
        self.cur_nimg = self.add_weight(name="cur_nimg", dtype="int64", initializer="zeros",
                                        **counter)
        self.pl_mean = self.add_weight(name="pl_mean", dtype="float32", initializer="zeros",
                                       **counter)
        self.ada_sign_sum = self.add_weight(name="ada_sign_sum", dtype="float32",
                                            initializer="zeros", **counter)
        self.ada_count = self.add_weight(name="ada_count", dtype="float32", initializer="zeros",
                                         **counter)
        names = ["Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/scores/real",
                 "Loss/scores/fake", "Loss/signs/real", "Loss/signs/fake", "Loss/pl_penalty"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self._py_step = None
        self.logs_as_vectors = False   # MultiWorkerMirroredStrategy needs shape-[1] logs.

    # ----------------------------------------------------------------------------------------
    # Set-up.

    @staticmethod
    def make_optimizers(train_config):
        """Adam for G and D with the official lazy-regularisation lr / beta scaling."""
        def adam(lr, reg_interval):
            ratio = 1.0 if reg_interval is None else reg_interval / (reg_interval + 1)
            b1, b2 = train_config.betas
            return keras.optimizers.Adam(learning_rate=lr * ratio, beta_1=b1 ** ratio,
                                         beta_2=b2 ** ratio, epsilon=train_config.eps)
        return (adam(train_config.g_lr, train_config.g_reg_interval),
                adam(train_config.d_lr, train_config.d_reg_interval))

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        if self.steps_per_execution != 1:
            raise ValueError("StyleGAN.compile: steps_per_execution must be 1 (lazy "
                             "regularisation selects a compiled step per iteration)")
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        # Build every sub-layer now (Keras's symbolic build under a strategy would call
        # ``call`` with a real batch): one tiny D evaluation builds the weight-less ones.
        res, ch = self.G.img_resolution, self.G.img_channels
        c = tf.zeros([1, self.c_dim]) if self.c_dim else None
        self.D(tf.zeros([1, res, res, ch]), c)
        self.g_optimizer.build(self.G.trainable_variables)
        self.d_optimizer.build(self.D.trainable_variables)
        self.built = True
        compat.install_phase_dispatch(self, self._phase_functions(), self._next_phase)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def checkpoint_variables(self):
        """(key, variable) pairs saved by :mod:`sg3keras.training.checkpoint`."""
        pairs = []
        for prefix, obj in [("G", self.G), ("D", self.D), ("G_ema", self.G_ema),
                            ("augment_pipe", self.augment_pipe),
                            ("g_opt", getattr(self, "g_optimizer", None)),
                            ("d_opt", getattr(self, "d_optimizer", None))]:
            if obj is None:
                continue
            for i, v in enumerate(obj.variables):
                # Index + short name: auto-numbered object names (adam_3, ...) vary by process.
                pairs.append((f"{prefix}/{i:04d}/{v.name}", v))
        for v in [self.step, self.cur_nimg, self.pl_mean, self.ada_sign_sum, self.ada_count]:
            pairs.append((f"trainer/{v.name}", v))
        return pairs

    # ----------------------------------------------------------------------------------------
    # Phase selection (Python side, one compiled function per combination of phases).

    def _phase_functions(self):
        tc = self.train_config
        combos = {(False, False)}
        if tc.d_reg_interval:
            combos.add((True, False))
        if tc.g_reg_interval and self.loss_config.pl_weight > 0:
            combos |= {(False, True), (True, True)}
        return {c: (lambda data, c=c: self._train_step(data, do_dreg=c[0], do_greg=c[1]))
                for c in combos}

    def _next_phase(self):
        if self._py_step is None:
            self._py_step = int(self.step.numpy())
        tc, s = self.train_config, self._py_step
        do_dreg = bool(tc.d_reg_interval) and s % tc.d_reg_interval == 0
        do_greg = bool(tc.g_reg_interval) and self.loss_config.pl_weight > 0 and \
            s % tc.g_reg_interval == 0
        self._py_step += 1
        return (do_dreg, do_greg)

    def reset_phase_counter(self):
        """Call after restoring variables so that the next step re-reads ``step``."""
        self._py_step = None

    # ----------------------------------------------------------------------------------------
    # Randomness: stateless draws for the global batch, sliced per replica.

    def _seed(self, phase):
        return tf.stack([tf.constant(self.seed, tf.int64), self.step * 64 + phase])

    def _local(self, x, n):
        ctx = tf.distribute.get_replica_context()
        rid = 0 if ctx is None else ctx.replica_id_in_sync_group
        return x[rid * n:(rid + 1) * n]

    def _latents(self, phase, n):
        z = tf.random.stateless_normal([self.global_batch, self.G.z_dim], seed=self._seed(phase))
        return self._local(z, n)

    def _gen_labels(self, phase, n):
        if self.c_dim == 0:
            return tf.zeros([n, 0], tf.float32)
        if self.label_table is None:
            raise ValueError("StyleGAN: a conditional G needs label_table (the dataset labels)")
        idx = tf.random.stateless_uniform([self.global_batch], seed=self._seed(phase + 16),
                                          maxval=len(self.label_table), dtype=tf.int64)
        return self._local(tf.gather(tf.constant(self.label_table), idx), n)

    def _gen_inputs(self, phase, n):
        """This replica's ``z``, ``c`` (and mixing ``z2``) of a phase: ``n`` rows each."""
        g = dict(z=self._latents(phase, n), c=self._gen_labels(phase, n))
        if self.loss_config.style_mixing_prob > 0:
            g["z2"] = self._latents(phase + 40, n)
        return g

    # ----------------------------------------------------------------------------------------
    # The official run_G / run_D.

    def _c(self, c):
        return c if self.c_dim > 0 else None

    def _run_G(self, g, phase, update_emas=False):
        """``g``: dict of ``z``, ``c`` and, with style mixing, ``z2`` (see ``_gen_inputs``).

        The mixing cutoff comes from ``(seed, step, phase)``, so every round of a phase (and
        every replica) shares it; the official loop draws one per ``run_G`` call."""
        z, c = g["z"], g["c"]
        ws = self.G.mapping(z, self._c(c), update_emas=update_emas)
        p = self.loss_config.style_mixing_prob
        if p > 0:
            num_ws = self.G.num_ws
            seed = self._seed(phase + 32)
            cutoff = tf.random.stateless_uniform([], seed=seed, minval=1, maxval=num_ws,
                                                 dtype=tf.int32)
            use = tf.random.stateless_uniform([], seed=seed + 1) < p
            cutoff = tf.where(use, cutoff, num_ws)
            ws2 = self.G.mapping(g["z2"], self._c(c), update_emas=False)
            mix = tf.reshape(tf.range(num_ws) >= cutoff, [1, num_ws, 1])
            ws = tf.where(mix, ws2, ws)
        return self.G.synthesis(ws, update_emas=update_emas), ws

    def _run_D(self, img, c, sigma):
        if self.loss_config.blur_init_sigma > 0:
            img = dynamic_blur(img, sigma, self.loss_config.blur_init_sigma)
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, self._c(c))

    def _avg(self, per_sample, batch=None):
        per_sample = tf.reshape(tf.cast(per_sample, tf.float32), [-1])
        return tf.nn.compute_average_loss(per_sample, global_batch_size=batch or self.global_batch)

    # ----------------------------------------------------------------------------------------
    # One training iteration.

    def _rounds(self, real):
        """``(n, chunks)``: this replica's batch and its ``(start, size)`` rounds of batch_gpu."""
        ctx = tf.distribute.get_replica_context()
        replicas = 1 if ctx is None else ctx.num_replicas_in_sync
        n = self.global_batch // replicas
        if real.shape[0] is not None and real.shape[0] != n:
            raise ValueError(f"StyleGAN: per-replica batch of reals is {real.shape[0]}, expected "
                             f"TrainConfig.batch / replicas = {self.global_batch} / {replicas}")
        # At least one whole round: a config resolved for fewer replicas (batch_gpu > n) runs
        # each replica's batch in one pass.
        batch_gpu = min(self.train_config.batch_gpu or n, n)
        if n % batch_gpu:
            raise ValueError(f"StyleGAN: batch_gpu={batch_gpu} must divide the per-replica batch "
                             f"{n} (TrainConfig.batch {self.global_batch} / {replicas} replicas)")
        return n, [(k * batch_gpu, batch_gpu) for k in range(n // batch_gpu)]

    def _accumulate(self, loss_fn, model, inputs, chunks):
        """Sum over ``chunks`` of ``d loss_fn(chunk) / d model.trainable_variables``.

        Args:
            loss_fn: ``(part, k) -> (loss, stats)``; ``part`` is ``inputs`` sliced to round ``k``;
                ``stats`` maps tracker names (others are ignored here) to per-sample values.
            model: the model whose trainable variables get gradients.
            inputs: nest of replica-level tensors, sliced along axis 0 per round.
            chunks: ``[(start, size)]`` rows of ``inputs`` per round.
        Returns:
            ``(grads, stats)``: summed gradients (None where no round reaches a variable) and
            the list of every round's ``stats``.

        Round k's inputs wait for round k-1's gradients (control dependencies), so only one
        round's activations are alive at a time; the gradient sums are the only carried state.
        A static Python loop, not ``tf.while_loop``: the ``update_emas`` buffer writes are
        cross-replica ``merge_call``s, which are not allowed inside control flow.
        """
        total, all_stats = None, []
        for k, (start, size) in enumerate(chunks):
            part = tf.nest.map_structure(lambda t: t[start:start + size], inputs)
            if total is not None:
                with tf.control_dependencies([g for g in total if g is not None]):
                    part = tf.nest.map_structure(tf.identity, part)
            with tf.GradientTape() as tape:
                loss, stats = loss_fn(part, k)
            grads = tape.gradient(loss, model.trainable_variables)
            total = grads if total is None else [_add_grads(a, b) for a, b in zip(total, grads)]
            for name, value in stats.items():
                if name in self.trackers:
                    self.trackers[name].update_state(value)
            all_stats.append(stats)
        return total, all_stats

    def _train_step(self, data, do_dreg, do_greg):
        real, real_c = data
        real = tf.cast(real, tf.float32)
        n, chunks = self._rounds(real)
        lc, tc = self.loss_config, self.train_config
        sigma = blur_sigma_at(self.cur_nimg, lc.blur_init_sigma, lc.blur_fade_kimg)

        # Gmain.
        def gmain(g, k):
            img, _ = self._run_G(g, _PH_GMAIN)
            fake_logits = self._run_D(img, g["c"], sigma)
            loss_g = losses.nonsaturating_generator_loss(fake_logits)
            return self._avg(loss_g), {"Loss/scores/fake": fake_logits,
                                       "Loss/signs/fake": tf.sign(fake_logits),
                                       "Loss/G/loss": loss_g}
        grads, _ = self._accumulate(gmain, self.G, self._gen_inputs(_PH_GMAIN, n), chunks)
        self._apply(self.g_optimizer, grads, self.G)

        if do_greg:
            self._path_length_step(n, chunks)

        # Dmain: G runs with update_emas=True (w_avg, magnitude_ema move here, as official,
        # once per round); stop_gradient keeps the backward pass out of G.
        def dmain(part, k):
            img, _ = self._run_G(part["gen"], _PH_DMAIN, update_emas=True)
            fake_logits = self._run_D(tf.stop_gradient(img), part["gen"]["c"], sigma)
            real_logits = self._run_D(part["real"], part["real_c"], sigma)
            loss_real, loss_fake = losses.nonsaturating_discriminator_loss(real_logits, fake_logits)
            loss_d = loss_real + loss_fake
            return self._avg(loss_d), {"Loss/scores/real": real_logits,
                                       "Loss/signs/real": tf.sign(real_logits),
                                       "Loss/D/loss": loss_d, "ada_signs": tf.sign(real_logits)}
        reals = dict(real=real, real_c=real_c)
        grads, stats = self._accumulate(dmain, self.D, dict(gen=self._gen_inputs(_PH_DMAIN, n),
                                                            **reals), chunks)
        self._apply(self.d_optimizer, grads, self.D)
        signs = [s["ada_signs"] for s in stats]

        if do_dreg:
            def dreg(part, k):
                penalty, reg_logits = losses.r1_penalty(
                    lambda x: self._run_D(x, part["real_c"], sigma), part["real"])
                loss_r1 = penalty * (lc.r1_gamma / 2) * tc.d_reg_interval
                return self._avg(loss_r1), {"Loss/r1_penalty": penalty,
                                            "ada_signs": tf.sign(reg_logits)}
            grads, stats = self._accumulate(dreg, self.D, reals, chunks)
            self._apply(self.d_optimizer, grads, self.D)
            signs += [s["ada_signs"] for s in stats]

        sign_sum = tf.add_n([tf.reduce_sum(s) for s in signs])
        sign_count = tf.add_n([tf.cast(tf.size(s), tf.float32) for s in signs])
        self._update_ada(sign_sum, sign_count)
        self._update_ema()
        return self._logs()

    def _apply(self, optimizer, grads, model):
        """One optimizer step on the variables that have a gradient (as official: a parameter
        outside the loss's graph, e.g. D's output bias under R1, is left alone)."""
        pairs = [(g, v) for g, v in zip(_sanitize(grads), model.trainable_variables)
                 if g is not None]
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])

    def _path_length_step(self, n, chunks):
        """StyleGAN2 Greg: path-length penalty x g_reg_interval on ``size // pl_batch_shrink``
        samples of every round (official), ``pl_mean`` moving once per round."""
        lc, tc = self.loss_config, self.train_config
        n_pl = max(chunks[0][1] // lc.pl_batch_shrink, 1)
        ctx = tf.distribute.get_replica_context()
        total = (1 if ctx is None else ctx.num_replicas_in_sync) * len(chunks) * n_pl
        res = self.G.img_resolution

        def greg(g, k):
            ws = self.G.mapping(g["z"], self._c(g["c"]))
            seed = self._seed(_PH_GREG + 48)
            if k:
                seed = tf.random.experimental.stateless_fold_in(seed, k)
            with tf.control_dependencies([g["z"]]):    # Drawn when this round starts.
                noise = tf.random.stateless_normal([n_pl, res, res, self.G.img_channels], seed)
            penalty, pl_mean = losses.path_length_penalty(
                self.G.synthesis, ws, self.pl_mean, lc.pl_decay, noise=noise / res)
            self.pl_mean.assign(pl_mean)
            loss = self._avg(penalty * lc.pl_weight * tc.g_reg_interval, batch=total)
            return loss, {"Loss/pl_penalty": penalty}

        gen = dict(z=self._latents(_PH_GREG, n), c=self._gen_labels(_PH_GREG, n))
        grads, _ = self._accumulate(greg, self.G, gen, [(s, n_pl) for s, _ in chunks])
        self._apply(self.g_optimizer, grads, self.G)

    def _update_ada(self, sign_sum, sign_count):
        """Accumulate sign(D(real)) over all replicas; adjust p every ``ada_interval`` steps."""
        tc = self.train_config
        if not self.ada_enabled:
            self.step.assign_add(1)
            return
        ctx = tf.distribute.get_replica_context()
        sign_sum, sign_count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [sign_sum, sign_count])
        total, count = self.ada_sign_sum + sign_sum, self.ada_count + sign_count
        adjust_now = (self.step + 1) % tc.ada_interval == 0
        p = self.augment_pipe.p
        new_p = ada_adjust(p, total / tf.maximum(count, 1.0), tc.ada_target, self.global_batch,
                           tc.ada_interval, tc.ada_kimg)
        p.assign(tf.where(adjust_now, tf.cast(new_p, p.dtype), p))
        self.ada_sign_sum.assign(tf.where(adjust_now, 0.0, total))
        self.ada_count.assign(tf.where(adjust_now, 0.0, count))
        self.step.assign_add(1)

    def _update_ema(self):
        """G_ema: parameters follow G with the official ramp-up; buffers are copied."""
        tc = self.train_config
        self.cur_nimg.assign_add(self.global_batch)
        ema_nimg = tc.ema_kimg * 1000.0
        nimg = tf.cast(self.cur_nimg, tf.float64)
        ema = tf.constant(ema_nimg, tf.float64)
        if tc.ema_rampup is not None:
            ema = tf.minimum(ema, nimg * tc.ema_rampup)
        beta = tf.cast(tf.pow(tf.constant(0.5, tf.float64), self.global_batch / tf.maximum(ema, 1e-8)),
                       tf.float32)
        pairs_p = list(zip(self.G_ema.trainable_variables, self.G.trainable_variables))
        pairs_b = list(zip(self.G_ema.non_trainable_variables, self.G.non_trainable_variables))

        def update(strategy):
            for pe, p in pairs_p:
                pe.assign(p + (pe - p) * beta)
            for be, b in pairs_b:
                be.assign(b)

        tf.distribute.get_replica_context().merge_call(update)

    def _logs(self):
        logs = {name: m.result() for name, m in self.trackers.items()}
        logs["augment_p"] = tf.cast(self.augment_pipe.p, tf.float32) \
            if self.augment_pipe is not None else tf.constant(0.0)
        if self.logs_as_vectors:
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    def train_step(self, data):  # Used only if the phase dispatch is bypassed.
        return self._train_step(data, do_dreg=False, do_greg=False)

    def call(self, z, c=None, training=False):
        return self.G_ema(z, c)
