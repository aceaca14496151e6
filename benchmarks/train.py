"""Training throughput: kzoo's overridden train_step under `fit` vs a bare tf.function loop.

For each recipe the model is built exactly as the recipe builds it, at the recipe's
`quick` configuration (or `paper` with --paper-sizes), on its default offline data.
Variants: XLA on/off and mixed precision (`mixed_bfloat16` on CPU, `mixed_float16` on GPU).
The reference is the same model trained by a minimal hand-written `tf.function` loop
(GradientTape per player for GANs; the model's own `train_step` in a bare loop for the
others), so the ratio shows what `fit` and the kzoo skeleton cost.
"""

from __future__ import annotations

import dataclasses
import importlib
import time


from benchmarks.flops import graph_flops


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

        def step(batch):
            for chunk in split_batch(batch, model.d_steps):
                with tf.GradientTape() as tape:
                    loss, _ = model.discriminator_loss(chunk, training=True)
                model.d_optimizer.apply_gradients(zip(tape.gradient(loss, d_vars), d_vars))
            with tf.GradientTape() as tape:
                loss, _ = model.generator_loss(chunk, training=True)
            model.g_optimizer.apply_gradients(zip(tape.gradient(loss, g_vars), g_vars))
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
        return {
            "recipe": recipe_name, "preset": preset, "image_size": cfg.image_size,
            "width": getattr(cfg, "width", None), "batch": cfg.batch_size,
            "images_per_step": images_per_step, "xla": jit,
            "precision": keras.mixed_precision.global_policy().name,
            "fit_images_per_s": steps * images_per_step / fit_s,
            "reference_images_per_s": steps * images_per_step / ref_s,
            "ratio_to_reference": ref_s / fit_s,
            "train_step_gflop": flops / 1e9,
            "fit_gflops_per_s": flops * steps / fit_s / 1e9,
        }
    finally:
        keras.mixed_precision.set_global_policy("float32")


def run(recipes, *, preset="quick", steps=20, variants=((False, False), (True, False), (False, True))):
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
    return rows
