"""Training throughput: kzoo's overridden train_step under `fit` vs a bare tf.function loop.

For each recipe the model is built exactly as the recipe builds it, at the recipe's
`quick` configuration (or `paper` with --paper-sizes), on its default offline data.
Variants: XLA on/off and mixed precision (`mixed_bfloat16` on CPU, `mixed_float16` on GPU).
The reference is the same model trained by a minimal hand-written `tf.function` loop
(for GANs the same algorithm written with two GradientTapes: the generator tape open
around G's forward pass, the discriminator's update in its own tape on the detached
fakes, then the generator's loss still inside the generator tape; the model's own
`train_step` in a bare loop for the others), so the ratio shows what `fit` and the
kzoo skeleton cost. FLOPs per step: the analytic count of kzoo's `train_step`
(`benchmarks.flops.analytic_step_flops`: each network pass the step makes, 3x its forward
FLOPs when differentiated, 1x otherwise), which gives the rows' GFLOP/s; the count of the
traced reference graph (`train_step_gflop`) is kept beside it, but TF's registry also
counts gradient ops that never run there.

`reference_loops` times kzoo's `train_step` against the loops users compare with,
written here on the same networks at the same size: the TensorFlow pix2pix
tutorial's `train_step` (both tapes around one forward pass, simultaneous update)
and the CycleGAN authors' `optimize_parameters` (G_A, G_B forward once; the
generators' update; then D_A, D_B on pooled, detached fakes). Steps of the two are
timed in alternating blocks in one process, so contention from other work on the
machine hits both alike; the ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import dataclasses
import importlib
import time


from benchmarks.flops import analytic_step_flops, graph_flops


def _setup(recipe_name, preset, jit, mixed):
    import keras

    from kzoo.recipes.runner import mixed_precision_policy, resolve_config

    recipe = importlib.import_module(f"kzoo.recipes.{recipe_name}").RECIPE
    cfg, _, _, _ = resolve_config(recipe, ["--preset", preset])
    cfg = dataclasses.replace(cfg, jit_compile=jit)
    keras.mixed_precision.set_global_policy(mixed_precision_policy() if mixed else "float32")
    keras.utils.set_random_seed(0)
    data, _ = recipe.load_data(cfg)
    model = recipe.build(cfg, data)
    dataset = recipe.train_dataset(cfg, data, model)
    return cfg, model, dataset


def _reference_step(model, jit):
    """A minimal hand-written tf.function training step for `model`."""
    import tensorflow as tf

    if hasattr(model, "discriminator_loss"):
        from kzoo.training import split_batch

        g_vars, d_vars = model.generator_variables, model.discriminator_variables

        def d_update(chunk, fakes):
            with tf.GradientTape() as tape:
                loss, _ = model.discriminator_loss(chunk, tf.nest.map_structure(tf.stop_gradient, fakes),
                                                training=True)
            model.d_optimizer.apply_gradients(zip(tape.gradient(loss, d_vars), d_vars))

        def step(batch):
            chunks = split_batch(batch, model.d_steps)
            for chunk in chunks[:-1]:
                d_update(chunk, model.generate(chunk, training=True))
            chunk = chunks[-1]
            with tf.GradientTape() as g_tape:
                fakes = model.generate(chunk, training=True)
                with g_tape.stop_recording():
                    if not model.share_generator_pass:
                        d_update(chunk, fakes)
                        fakes = None
                    elif not model.generator_first:
                        d_update(chunk, fakes)
                if fakes is None:  # fresh noise for the generator step (WGAN-GP)
                    fakes = model.generate(chunk, training=True)
                loss, _ = model.generator_loss(chunk, fakes, training=True)
            model.g_optimizer.apply_gradients(zip(g_tape.gradient(loss, g_vars), g_vars))
            if model.share_generator_pass and model.generator_first:
                d_update(chunk, fakes)
            return loss
    else:
        def step(batch):
            return model.train_step(batch)

    return tf.function(step, jit_compile=jit)


def _time(fn, steps, warmup):
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - t


def measure(recipe_name, *, preset="quick", jit=False, mixed=False, steps=20, warmup=3):
    import keras

    cfg, model, dataset = _setup(recipe_name, preset, jit, mixed)
    try:
        images_per_step = cfg.batch_size * getattr(model, "d_steps", 1)
        it = iter(dataset)
        batch = next(it)
        # fit: one epoch of warmup + steps steps; only the steady-state steps are timed
        # (from the end of the last warm-up batch to the end of the last batch), so the
        # one-off cost of starting `fit` (iterators, callbacks, tracing) is not counted.
        marks = {}

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == warmup - 1:
                    marks["start"] = time.perf_counter()
                marks["end"] = time.perf_counter()

        model.fit(dataset, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[Clock()])
        fit_s = marks["end"] - marks["start"]
        ref = _reference_step(model, jit)
        ref_s = _time(lambda: ref(next(it)), steps, warmup)
        flops = graph_flops(ref.get_concrete_function(batch))
        networks = [n for n in model._flatten_layers(include_self=True) if isinstance(n, keras.Model)]
        analytic = analytic_step_flops(model.train_step, batch, networks)
        return {
            "recipe": recipe_name, "preset": preset, "image_size": cfg.image_size,
            "width": getattr(cfg, "width", None), "batch": cfg.batch_size,
            "images_per_step": images_per_step, "xla": jit,
            "precision": keras.mixed_precision.global_policy().name,
            "fit_images_per_s": steps * images_per_step / fit_s,
            "reference_images_per_s": steps * images_per_step / ref_s,
            "ratio_to_reference": ref_s / fit_s,
            "train_step_gflop": flops / 1e9,  # the traced graph's count (gradient ops included)
            "train_step_gflop_analytic": analytic / 1e9,
            "fit_gflops_per_s": analytic * steps / fit_s / 1e9,
        }
    finally:
        keras.mixed_precision.set_global_policy("float32")


def run(recipes, *, preset="quick", steps=20, variants=((False, False), (True, False), (False, True))):
    """Training rows of every recipe and variant, then the reference-loop rows (`reference_loops`)."""
    rows = []
    for name in recipes:
        for jit, mixed in variants:
            try:
                rows.append(measure(name, preset=preset, jit=jit, mixed=mixed, steps=steps))
            except Exception as e:  # a benchmark row that fails is reported, not hidden
                rows.append({"recipe": name, "xla": jit, "mixed": mixed, "error": f"{type(e).__name__}: {e}"[:300]})
            print(f"  train {name} xla={jit} mixed={mixed}: "
                  + (f"{rows[-1]['fit_images_per_s']:.0f} img/s, ratio {rows[-1]['ratio_to_reference']:.2f}"
                     if "error" not in rows[-1] else rows[-1]["error"]), flush=True)
    return rows + run_reference_loops([n for n in REFERENCE_LOOPS if n in recipes])


# --- the reference loops users compare with ------------------------------------------------

def pix2pix_tutorial_step(model):
    """The TensorFlow pix2pix tutorial's `train_step` on `model`'s networks and optimizers.

    tensorflow.org/tutorials/generative/pix2pix: one generator forward pass inside
    both tapes, D on (input, target) and (input, G(input)), the generator's loss
    (GAN + 100 L1) and the discriminator's (real + fake cross-entropy) from the
    same forward pass, then both updates at once.
    """
    import tensorflow as tf

    from kzoo import losses

    g, d = model.generator, model.discriminator

    def step(batch):
        source, target = batch
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            fake = g(source, training=True)
            real_logits = d([source, target], training=True)
            fake_logits = d([source, fake], training=True)
            gen_loss = losses.nonsaturating_g_loss(fake_logits) + model.l1_weight * losses.l1(target, fake)
            disc_loss = losses.nonsaturating_d_loss(real_logits, fake_logits)
        g_grads = gen_tape.gradient(gen_loss, g.trainable_variables)
        d_grads = disc_tape.gradient(disc_loss, d.trainable_variables)
        model.g_optimizer.apply_gradients(zip(g_grads, g.trainable_variables))
        model.d_optimizer.apply_gradients(zip(d_grads, d.trainable_variables))
        return gen_loss

    return step


def cyclegan_authors_step(model):
    """The CycleGAN authors' `optimize_parameters` (junyanz/pytorch-CycleGAN-and-pix2pix) on `model`.

    forward(): fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A);
    backward_G: identity maps, LSGAN through D_A/D_B, cycle and identity L1; the
    generators' step; then backward_D_A / backward_D_B on fakes from the image
    pools, detached, each loss halved; the discriminators' step.
    """
    import tensorflow as tf

    from kzoo import losses

    g_ab, g_ba, d_a, d_b = model.generator_ab, model.generator_ba, model.discriminator_a, model.discriminator_b
    g_vars, d_vars = model.generator_variables, model.discriminator_variables
    lam, idt = model.cycle_weight, model.identity_weight

    def step(batch):
        real_a, real_b = batch
        with tf.GradientTape() as tape:
            fake_b = g_ab(real_a, training=True)
            rec_a = g_ba(fake_b, training=True)
            fake_a = g_ba(real_b, training=True)
            rec_b = g_ab(fake_a, training=True)
            idt_a = g_ab(real_b, training=True)
            idt_b = g_ba(real_a, training=True)
            g_loss = (losses.lsgan_g_loss(d_b(fake_b, training=True))
                      + losses.lsgan_g_loss(d_a(fake_a, training=True))
                      + lam * (losses.l1(rec_a, real_a) + losses.l1(rec_b, real_b))
                      + lam * idt * (losses.l1(idt_a, real_b) + losses.l1(idt_b, real_a)))
        model.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars))
        pooled_b = model.pool_b(tf.stop_gradient(fake_b), seed_generator=model.seed_generator)
        pooled_a = model.pool_a(tf.stop_gradient(fake_a), seed_generator=model.seed_generator)
        with tf.GradientTape() as tape:
            d_loss = (0.5 * losses.lsgan_d_loss(d_a(real_a, training=True), d_a(pooled_a, training=True))
                      + 0.5 * losses.lsgan_d_loss(d_b(real_b, training=True), d_b(pooled_b, training=True)))
        model.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars))
        return g_loss

    return step


REFERENCE_LOOPS = {
    # name: (model family, reference step, model overrides, batch) -- the reference's own size
    "pix2pix": ("pix2pix", pix2pix_tutorial_step, {"image_size": 256, "width": 64}, 1),
    "cyclegan": ("cyclegan", cyclegan_authors_step, {"image_size": 128, "width": 32}, 1),
}


def alternate(a, b, *, rounds=3, steps=2, warmup=2):
    """Median over rounds of (time of `steps` calls of b) / (same of a), blocks alternating a, b.

    Returns `(ratio, a_seconds_per_call, b_seconds_per_call)`, the latter two medians.
    """
    import statistics

    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for _ in range(rounds):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            out.append((time.perf_counter() - t) / steps)
    ratio = statistics.median(y / x for x, y in zip(ta, tb))
    return ratio, statistics.median(ta), statistics.median(tb)


def reference_loop(name, *, jit=False, rounds=3, steps=2, warmup=2, sizes=None):
    """kzoo's `train_step` vs the reference loop `name` (see `REFERENCE_LOOPS`), one row."""
    import keras
    import tensorflow as tf

    from kzoo.zoo import create_model

    family, make_step, overrides, batch_size = REFERENCE_LOOPS[name]
    overrides = {**overrides, **(sizes or {})}
    keras.utils.set_random_seed(0)
    model = create_model(family, seed=0, **overrides)
    adam = lambda: keras.optimizers.Adam(2e-4, beta_1=0.5)  # noqa: E731
    model.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=jit)
    batch = tf.nest.map_structure(tf.convert_to_tensor, model.sample_batch(batch_size, rng=0))
    kzoo_step = tf.function(model.train_step, jit_compile=jit)
    ref_step = tf.function(make_step(model), jit_compile=jit)
    ratio, ref_s, kzoo_s = alternate(lambda: ref_step(batch), lambda: kzoo_step(batch),
                                     rounds=rounds, steps=steps, warmup=warmup)
    flops = {k: graph_flops(f.get_concrete_function(batch)) / 1e9
             for k, f in (("kzoo", kzoo_step), ("reference", ref_step))}
    return {"recipe": name, "reference": make_step.__name__, "image_size": model.image_size,
            "width": model.width, "batch": batch_size, "xla": jit,
            "precision": keras.mixed_precision.global_policy().name,
            "kzoo_step_s": kzoo_s, "reference_step_s": ref_s,
            "ratio_to_reference": ratio,  # reference time / kzoo time: > 1 means kzoo is faster
            "kzoo_step_gflop": flops["kzoo"], "reference_step_gflop": flops["reference"],
            "rounds": rounds, "steps_per_round": steps}


def run_reference_loops(names, **kwargs):
    rows = []
    for name in names:
        try:
            rows.append(reference_loop(name, **kwargs))
            r = rows[-1]
            print(f"  reference {name} ({r['reference']}): kzoo {r['kzoo_step_s']:.3f} s/step, "
                  f"reference {r['reference_step_s']:.3f} s/step, ratio {r['ratio_to_reference']:.2f}",
                  flush=True)
        except Exception as e:  # reported, not hidden
            rows.append({"recipe": name, "reference": "error", "error": f"{type(e).__name__}: {e}"[:300]})
            print(f"  reference {name}: {rows[-1]['error']}", flush=True)
    return rows
