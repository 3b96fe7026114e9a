"""The GAN as a ``keras.Model``: ``gan.compile(...)`` + ``gan.fit(dataset)`` (TensorFlow only).

One ``fit`` step is one iteration of the official training loop; :meth:`StyleGAN.train_iteration`
runs the same step on given inputs (``python -m sg3keras.training.replay`` replays recorded
iterations of the official loop with it):

* ``Gmain``: non-saturating G loss ``softplus(-D(G(z)))``;
* ``Greg`` (stylegan2 only, every ``g_reg_interval`` steps): path-length penalty x interval;
* ``Dmain``: ``softplus(D(G(z))) + softplus(-D(x))``, G run with ``update_emas=True`` (this is
  where ``w_avg`` and ``magnitude_ema`` move, as in the official loop);
* ``Dreg`` (every ``d_reg_interval`` = 16 steps): R1 ``sum(grad^2) * gamma/2 * interval``;
* G_ema: ``p_ema <- p + beta (p_ema - p)`` with the official ramp-up (:func:`ema_beta`, from the
  images seen before the iteration); buffers are copied;
* optimizers: :class:`~sg3keras.runtime.optimizers.TorchAdam` (``torch.optim.Adam`` semantics),
  one per network, shared by its main and regularisation phases;
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

import keras
import numpy as np
import tensorflow as tf

from sg3keras import losses
from sg3keras.config import LossConfig, TrainConfig
from sg3keras.ops.misc import lerp
from sg3keras.training import compat
from sg3keras.training.ada import ada_adjust
from sg3keras.training.step_math import (add_grads as _add_grads, ema_beta, flat as _flat,
                                         make_optimizers, optimizer_hparams,
                                         sanitize as _sanitize)

__all__ = ["StyleGAN", "ema_beta"]

# Stateless-draw slots of the phases (part of the seed; fixed so that runs stay reproducible).
_PH_GMAIN, _PH_GREG, _PH_DMAIN, _PH_DREG = 1, 2, 3, 4


@keras.saving.register_keras_serializable(package="sg3keras")
class StyleGAN(keras.Model):
    """G, D and G_ema trained with the official StyleGAN2/3 objective under ``fit``.

    Args:
        G, D, G_ema: generator, discriminator and the EMA copy of G (same architecture as G).
        augment_pipe: optional :class:`sg3keras.training.augment.AugmentPipe` applied to every D input.
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
        >>> logs, record = gan.train_iteration(reals, labels, record=True)   # one step, by hand
    """

    def __init__(self, G, D, G_ema, augment_pipe=None, loss_config=LossConfig(),
                 train_config=TrainConfig(), label_table=None, seed=0, **kwargs):
        super().__init__(**kwargs)
        if not train_config.d_reg_interval:
            raise ValueError("StyleGAN: TrainConfig.d_reg_interval must be >= 1 (the official "
                             "'Dboth' schedule without lazy R1 is not supported)")
        if train_config.g_reg_interval is None and loss_config.pl_weight > 0:
            raise ValueError("StyleGAN: path-length regularisation (pl_weight > 0) needs "
                             "TrainConfig.g_reg_interval (the official 'Gboth' schedule with "
                             "path length is not supported)")
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
        names = ["Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/D/reg",
                 "Loss/scores/real", "Loss/scores/fake", "Loss/signs/real", "Loss/signs/fake",
                 "Loss/pl_penalty", "Loss/G/reg"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        # Means of the squares (with the trackers' counts: num/mean/std per tick, stats.jsonl).
        self.square_trackers = {n: keras.metrics.Mean(name=n + "/sq") for n in names}
        self._py_step = None
        self._iteration_functions = {}
        self.logs_as_vectors = False   # MultiWorkerMirroredStrategy needs shape-[1] logs.

    # ----------------------------------------------------------------------------------------
    # Set-up.

    @staticmethod
    def optimizer_hparams(train_config):
        """:func:`~sg3keras.training.step_math.optimizer_hparams` (train.py's Adam settings)."""
        return optimizer_hparams(train_config)

    @staticmethod
    def make_optimizers(train_config):
        """:func:`~sg3keras.training.step_math.make_optimizers` (train.py's G and D Adam)."""
        return make_optimizers(train_config)

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
        self._iteration_functions = {}
        compat.install_phase_dispatch(self, self._phase_functions(), self._next_phase)

    @property
    def metrics(self):
        return list(self.trackers.values()) + list(self.square_trackers.values())

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
    # Phases (Python side, one compiled function per combination of phases).

    def phases(self):
        """The official phase list ``[(name, interval)]`` in execution order.

        As train.py's training loop: a network without a regularisation interval has one phase
        ``<G|D>both``; otherwise ``<G|D>main`` (every iteration) and ``<G|D>reg`` (every
        ``interval`` iterations). A phase runs when ``step % interval == 0``.
        """
        tc = self.train_config
        g = [("Gboth", 1)] if tc.g_reg_interval is None else \
            [("Gmain", 1), ("Greg", int(tc.g_reg_interval))]
        return g + [("Dmain", 1), ("Dreg", int(tc.d_reg_interval))]

    def _phase_functions(self):
        tc = self.train_config
        combos = {(False, False), (True, False)}
        if tc.g_reg_interval and self.loss_config.pl_weight > 0:
            combos |= {(False, True), (True, True)}
        return {c: (lambda data, c=c: self._train_step(data, do_dreg=c[0], do_greg=c[1]))
                for c in combos}

    def _due(self, step):
        """``(do_dreg, do_greg)`` at iteration ``step``. As official, a phase whose loss is
        switched off (``r1_gamma == 0``, ``pl_weight == 0``) does nothing, not even a step."""
        tc, lc = self.train_config, self.loss_config
        do_dreg = lc.r1_gamma != 0 and step % tc.d_reg_interval == 0
        do_greg = bool(tc.g_reg_interval) and lc.pl_weight > 0 and step % tc.g_reg_interval == 0
        return (bool(do_dreg), bool(do_greg))

    def _next_phase(self):
        if self._py_step is None:
            self._py_step = int(self.step.numpy())
        due = self._due(self._py_step)
        self._py_step += 1
        return due

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

    def _gen_inputs(self, phase, n, given=None):
        """This replica's generator inputs of a phase, ``n`` rows each: ``z``, ``c``, the
        mixing ``z2`` (style mixing only), per-layer ``noise`` (generators with noise inputs)
        and ``pl_noise`` (the path-length phase). Entries of ``given`` (global-batch rows)
        replace the stateless draws."""
        given = dict(given or {})
        g = {}
        g["z"] = self._local(tf.cast(given.pop("z"), tf.float32), n) if "z" in given \
            else self._latents(phase, n)
        g["c"] = self._local(tf.cast(given.pop("c"), tf.float32), n) if "c" in given \
            else self._gen_labels(phase, n)
        if self.loss_config.style_mixing_prob > 0:
            g["z2"] = self._latents(phase + 40, n)
        layers = self.G.noise_inputs()
        if layers:
            given_noise = dict(given.pop("noise", None) or {})
            noise = {}
            for k, (name, res) in enumerate(layers):
                if name in given_noise:
                    noise[name] = self._local(tf.cast(given_noise.pop(name), tf.float32), n)
                else:
                    seed = tf.random.experimental.stateless_fold_in(self._seed(phase + 56), k)
                    noise[name] = self._local(
                        tf.random.stateless_normal([self.global_batch, res, res, 1], seed), n)
            if given_noise:
                raise ValueError(f"StyleGAN: noise for unknown layer(s) {sorted(given_noise)}; "
                                 f"the generator's noise inputs are {[l for l, _ in layers]}")
            g["noise"] = noise
        if phase == _PH_GREG:
            res, ch = self.G.img_resolution, self.G.img_channels
            g["pl_noise"] = self._local(tf.cast(given.pop("pl_noise"), tf.float32), n) \
                if "pl_noise" in given else self._local(tf.random.stateless_normal(
                    [self.global_batch, res, res, ch], self._seed(_PH_GREG + 48)), n)
        if given:
            raise ValueError(f"StyleGAN: unexpected generator input(s) {sorted(given)}")
        return g

    # ----------------------------------------------------------------------------------------
    # The official run_G / run_D.

    def _c(self, c):
        return c if self.c_dim > 0 else None

    def _run_G(self, g, phase, update_emas=False):
        """``g``: one round of :meth:`_gen_inputs`. The mixing cutoff comes from ``(seed,
        step, phase)``, so every round of a phase (and every replica) shares it; the official
        loop draws one per ``run_G`` call."""
        ws = self._mapping(g, phase, update_emas)
        return self._synthesis(g, ws, update_emas), ws

    def _mapping(self, g, phase, update_emas=False):
        """The ``ws`` of ``run_G``: mapping, then style mixing when it is on."""
        ws = self.G.mapping(g["z"], self._c(g["c"]), update_emas=update_emas)
        p = self.loss_config.style_mixing_prob
        if p > 0:
            u = tf.random.stateless_uniform([2], seed=self._seed(phase + 32))
            ws2 = self.G.mapping(g["z2"], self._c(g["c"]), update_emas=False)
            ws, _ = losses.style_mix(ws, ws2, p, uniforms=(u[0], u[1]))
        return ws

    def _synthesis(self, g, ws, update_emas=False):
        """The images of ``run_G``, with the round's per-layer noise where G has noise."""
        kw = {"noise": g["noise"]} if "noise" in g else {}
        return self.G.synthesis(ws, update_emas=update_emas, **kw)

    def _run_D(self, img, c, sigma):
        if self.loss_config.blur_init_sigma > 0:
            img = losses.blur_images(img, sigma, max_sigma=self.loss_config.blur_init_sigma)
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
                ``stats`` maps ``Loss/...`` names to per-sample values.
            model: the model whose trainable variables get gradients.
            inputs: nest of replica-level tensors, sliced along axis 0 per round.
            chunks: ``[(start, size)]`` rows of ``inputs`` per round.
        Returns:
            ``(grads, stats)``: summed gradients (None where no round reaches a variable) and
            every stat's per-sample values of all rounds, concatenated.

        Round k's inputs wait for round k-1's gradients (control dependencies), so only one
        round's activations are alive at a time; the gradient sums are the only carried state.
        A static Python loop, not ``tf.while_loop``: the ``update_emas`` buffer writes are
        cross-replica ``merge_call``s, which are not allowed inside control flow.
        """
        total, all_stats = None, {}
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
                self.trackers[name].update_state(value)
                self.square_trackers[name].update_state(tf.square(tf.cast(value, tf.float32)))
                all_stats.setdefault(name, []).append(_flat(value))
        return total, {k: tf.concat(v, 0) for k, v in all_stats.items()}

    def _train_step(self, data, do_dreg, do_greg, inputs=None, record=None):
        """One official training iteration. ``inputs``: optional ``{phase name: {z, c, noise,
        pl_noise}}`` replacing the stateless draws (see :meth:`train_iteration`); ``record``: a
        dict to fill with per-phase gradients, parameters after each step, optimizer state and
        per-sample statistics (see :meth:`train_iteration`)."""
        real, real_c = data
        real = tf.cast(real, tf.float32)
        inputs = inputs or {}
        n, chunks = self._rounds(real)
        lc, tc = self.loss_config, self.train_config
        sigma64 = losses.blur_sigma(self.cur_nimg, lc.blur_init_sigma, lc.blur_fade_kimg)
        sigma = tf.cast(sigma64, tf.float32)
        g_name = self.phases()[0][0]                      # "Gboth" or "Gmain"

        # Gmain (Gboth without path length).
        def gmain(g, k):
            img, _ = self._run_G(g, _PH_GMAIN)
            fake_logits = self._run_D(img, g["c"], sigma)
            loss_g = losses.nonsaturating_generator_loss(fake_logits)
            return self._avg(loss_g), {"Loss/scores/fake": fake_logits,
                                       "Loss/signs/fake": tf.sign(fake_logits),
                                       "Loss/G/loss": loss_g}
        gen = self._gen_inputs(_PH_GMAIN, n, inputs.get(g_name))
        grads, stats = self._accumulate(gmain, self.G, gen, chunks)
        self._apply(self.g_optimizer, grads, self.G, record, g_name, stats)

        if do_greg:
            self._path_length_step(n, chunks, inputs.get("Greg"), record)

        # Dmain: G runs with update_emas=True (w_avg, magnitude_ema move here, as official,
        # once per round); stop_gradient keeps the backward pass out of G.
        def dmain(part, k):
            img, _ = self._run_G(part["gen"], _PH_DMAIN, update_emas=True)
            fake_logits = self._run_D(tf.stop_gradient(img), part["gen"]["c"], sigma)
            real_logits = self._run_D(part["real"], part["real_c"], sigma)
            loss_real, loss_fake = losses.nonsaturating_discriminator_loss(real_logits, fake_logits)
            loss_d = loss_real + loss_fake
            return self._avg(loss_d), {"Loss/scores/fake": fake_logits,
                                       "Loss/signs/fake": tf.sign(fake_logits),
                                       "Loss/scores/real": real_logits,
                                       "Loss/signs/real": tf.sign(real_logits),
                                       "Loss/D/loss": loss_d}
        reals = dict(real=real, real_c=real_c)
        gen = self._gen_inputs(_PH_DMAIN, n, inputs.get("Dmain"))
        grads, stats = self._accumulate(dmain, self.D, dict(gen=gen, **reals), chunks)
        self._apply(self.d_optimizer, grads, self.D, record, "Dmain", stats)
        signs = [stats["Loss/signs/real"]]

        if do_dreg:
            def dreg(part, k):
                penalty, reg_logits = losses.r1_penalty(
                    lambda x: self._run_D(x, part["real_c"], sigma), part["real"])
                loss_r1 = penalty * (lc.r1_gamma / 2)
                return self._avg(loss_r1 * tc.d_reg_interval), {
                    "Loss/scores/real": reg_logits, "Loss/signs/real": tf.sign(reg_logits),
                    "Loss/r1_penalty": penalty, "Loss/D/reg": loss_r1}
            grads, stats = self._accumulate(dreg, self.D, reals, chunks)
            self._apply(self.d_optimizer, grads, self.D, record, "Dreg", stats)
            signs.append(stats["Loss/signs/real"])

        sign_sum = tf.add_n([tf.reduce_sum(s) for s in signs])
        sign_count = tf.add_n([tf.cast(tf.size(s), tf.float32) for s in signs])
        beta = self._update_ema()
        self._update_ada(sign_sum, sign_count)
        if record is not None:
            record["schedule"] = {"ema_beta": beta, "blur_sigma": sigma64,
                                  "cur_nimg": tf.identity(tf.convert_to_tensor(self.cur_nimg))}
        return self._logs()

    def _apply(self, optimizer, grads, model, record=None, phase=None, stats=None):
        """One optimizer step on the variables that have a gradient (as official: a parameter
        outside the loss's graph, e.g. D's output bias under R1, is left alone -- with
        :class:`TorchAdam` not even its moments or step count move)."""
        grads = _sanitize(grads)
        variables = model.trainable_variables
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        if record is None:
            return
        rec = {"grads": {i: g for i, g in enumerate(grads) if g is not None},
               "after_step": [tf.identity(tf.convert_to_tensor(v)) for v in variables], "stats": dict(stats)}
        if hasattr(optimizer, "state_of"):
            rec["optimizer"] = [tuple(tf.identity(tf.convert_to_tensor(s))
                                      for s in optimizer.state_of(v))
                                for v in variables]
        record[phase] = rec

    def _path_length_step(self, n, chunks, given=None, record=None):
        """StyleGAN2 Greg: path-length penalty x g_reg_interval on ``size // pl_batch_shrink``
        samples of every round (official), ``pl_mean`` moving once per round."""
        lc, tc = self.loss_config, self.train_config
        n_pl = max(chunks[0][1] // lc.pl_batch_shrink, 1)
        ctx = tf.distribute.get_replica_context()
        total = (1 if ctx is None else ctx.num_replicas_in_sync) * len(chunks) * n_pl
        scale = float(np.sqrt(self.G.img_resolution * self.G.img_resolution))

        def greg(g, k):
            penalty, pl_mean = losses.path_length_penalty(
                lambda ws: self._synthesis(g, ws), self._mapping(g, _PH_GREG), self.pl_mean, lc.pl_decay, noise=g["pl_noise"] / scale)
            self.pl_mean.assign(pl_mean)
            loss_pl = penalty * lc.pl_weight
            loss = self._avg(loss_pl * tc.g_reg_interval, batch=total)
            return loss, {"Loss/pl_penalty": penalty, "Loss/G/reg": loss_pl}

        gen = self._gen_inputs(_PH_GREG, n, given)
        grads, stats = self._accumulate(greg, self.G, gen, [(s, n_pl) for s, _ in chunks])
        self._apply(self.g_optimizer, grads, self.G, record, "Greg", stats)

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
        """G_ema: ``p_ema <- lerp(p, p_ema, beta)`` (``torch.lerp`` rounding; :func:`ema_beta` of
        the images seen
        *before* this iteration), buffers copied from G; then count this iteration's images.
        Returns beta (float64)."""
        tc = self.train_config
        beta64 = ema_beta(self.cur_nimg, self.global_batch, tc.ema_kimg, tc.ema_rampup)
        beta = tf.cast(beta64, tf.float32)
        pairs_p = list(zip(self.G_ema.trainable_variables, self.G.trainable_variables))
        pairs_b = list(zip(self.G_ema.non_trainable_variables, self.G.non_trainable_variables))

        def update(strategy):
            for pe, p in pairs_p:
                pe.assign(lerp(tf.convert_to_tensor(p), tf.convert_to_tensor(pe), beta))
            for be, b in pairs_b:
                be.assign(b)

        tf.distribute.get_replica_context().merge_call(update)
        self.cur_nimg.assign_add(self.global_batch)
        return beta64

    def _logs(self):
        logs = {name: m.result() for name, m in self.trackers.items()}
        for name, m in self.square_trackers.items():      # stats.jsonl's num and std
            logs["_sq:" + name] = m.result()
            logs["_num:" + name] = tf.cast(self.trackers[name].count, tf.float32)
        logs["augment_p"] = tf.cast(self.augment_pipe.p, tf.float32) \
            if self.augment_pipe is not None else tf.constant(0.0)
        if self.logs_as_vectors:
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    # ----------------------------------------------------------------------------------------
    # Public single-iteration entry point (replay of recorded runs, debugging, notebooks).

    def train_iteration(self, real_img, real_c=None, inputs=None, record=False):
        """Run one training iteration on given data: the step that ``fit`` compiles.

        The phases due at the current ``step`` run in the official order (:meth:`phases`),
        then G_ema, ADA and the counters move exactly as in ``fit``; nothing is drawn that is
        given. Call it outside a multi-replica strategy (it runs in the current replica
        context), after :meth:`compile`.

        Args:
            real_img: ``[batch, H, W, C]`` float images in ``[-1, 1]`` (NHWC).
            real_c: ``[batch, c_dim]`` labels (None: unconditional).
            inputs: optional ``{phase: {...}}`` with phase names of :meth:`phases`. Per phase:
                ``z`` ``[batch, z_dim]``, ``c`` ``[batch, c_dim]``, ``noise`` ``{layer:
                [batch, R, R, 1]}`` (N(0, 1) per-pixel noise of a StyleGAN2 generator, layer
                names from ``G.noise_inputs()``) and for ``Greg`` ``pl_noise``
                ``[batch, H, W, C]`` (N(0, 1), divided by ``sqrt(H W)`` here; the first
                ``batch // pl_batch_shrink`` rows are used). Anything not given is drawn from
                ``(seed, step, phase)`` as in ``fit``.
            record: also return, per phase that ran, ``grads`` (``{index into
                trainable_variables: gradient the optimizer saw}``), ``after_step`` (the
                variables right after the phase's step), ``optimizer`` (``(exp_avg,
                exp_avg_sq, step)`` per variable, with :class:`TorchAdam`) and ``stats``
                (per-sample ``Loss/...`` values), and ``schedule`` (``ema_beta``,
                ``blur_sigma``, float64, and ``cur_nimg`` after the iteration).
        Returns:
            ``logs`` (the running tracker means, as ``fit`` reports them), or ``(logs,
            record)`` with ``record=True``. Tensors.
        """
        if not hasattr(self, "g_optimizer"):
            raise RuntimeError("StyleGAN.train_iteration: call compile() first")
        real_img = tf.convert_to_tensor(real_img, tf.float32)
        if real_c is None:
            real_c = tf.zeros([real_img.shape[0], self.c_dim], tf.float32)
        real_c = tf.convert_to_tensor(real_c, tf.float32)
        do_dreg, do_greg = self._next_phase()
        key = (do_dreg, do_greg, bool(record))
        if key not in self._iteration_functions:
            def fn(data, given):
                rec = {} if record else None
                logs = self._train_step(data, do_dreg, do_greg, inputs=given, record=rec)
                return (logs, rec) if record else logs
            self._iteration_functions[key] = tf.function(fn)
        given = tf.nest.map_structure(lambda t: tf.convert_to_tensor(t, tf.float32),
                                      inputs or {})
        return self._iteration_functions[key]((real_img, real_c), given)

    def get_config(self):
        """The trainer's structure: nested G / D / G_ema / augment pipe configs (no weights;
        training state lives in checkpoints), the loss and train configs, labels and seed."""
        import dataclasses
        ser = keras.saving.serialize_keras_object
        config = super().get_config()
        config.update(G=ser(self.G), D=ser(self.D), G_ema=ser(self.G_ema),
                      augment_pipe=None if self.augment_pipe is None else ser(self.augment_pipe),
                      loss_config=dataclasses.asdict(self.loss_config),
                      train_config=dataclasses.asdict(self.train_config),
                      label_table=None if self.label_table is None else self.label_table.tolist(),
                      seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        des = keras.saving.deserialize_keras_object
        for key in ("G", "D", "G_ema", "augment_pipe"):
            if config.get(key) is not None:
                config[key] = des(config[key])
        config["loss_config"] = LossConfig(**config["loss_config"])
        train = dict(config["train_config"])
        train["betas"] = tuple(train["betas"])
        config["train_config"] = TrainConfig(**train)
        return cls(**config)

    def train_step(self, data):  # Used only if the phase dispatch is bypassed.
        return self._train_step(data, *self._due(0))

    def call(self, z, c=None, training=False):
        return self.G_ema(z, c)
