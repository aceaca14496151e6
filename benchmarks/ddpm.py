"""DDPM sampling speed beside the quality of the same samples.

The ancestral sampler over all T steps vs DDIM with 100 / 50 steps, in Keras (`DDPM.sample`,
the EMA eps-network) and through the exported eps-network on ONNX Runtime
(`kzoo.infer.OnnxModel.diffusion_sample`, no TensorFlow in the loop). Both call the network
in slices of `sample_batch` images per step (`kzoo.diffusion.batched`).

At the quick preset the model is the shipped, trained `ddpm-digits` hub preset (the quick
recipe's network), so every row also scores the ONNX samples with the reference digits
classifier (`kzoo.metrics.digits_generation_scores`: Fréchet distance, lower is better, and
Inception-Score-style score, higher is better) next to two baselines on the same classifier:
as many held-out real digits (the floor) and Gaussian noise images (what an untrained model
draws). At paper sizes the network is the recipe's untrained one: speed only.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time

import numpy as np


def _model(preset):
    """(DDPM, trained?) -- the trained hub preset for the quick network, else the recipe's."""
    if preset == "quick":
        from kzoo import hub

        return hub.load("ddpm-digits", part="full"), True
    from kzoo.recipes import ddpm
    from kzoo.recipes.runner import resolve_config

    cfg, _, _, _ = resolve_config(ddpm.RECIPE, ["--preset", preset])
    cfg = dataclasses.replace(cfg, jit_compile=False)
    data, _ = ddpm.RECIPE.load_data(cfg)
    return ddpm.RECIPE.build(cfg, data), False


def baselines(n, image_size, seed=0):
    """Digits scores of `n` held-out real digits and of `n` Gaussian noise images."""
    from kzoo.data.images import digits_arrays
    from kzoo.metrics import digits_generation_scores

    real, _ = digits_arrays("train", image_size)  # [0, 1]; the classifier scores against "test"
    rng = np.random.default_rng(seed)
    real = real[rng.choice(len(real), n, replace=False)] * 2.0 - 1.0
    noise = np.clip(rng.standard_normal(real.shape), -1, 1).astype(np.float32)
    return {f"real_{k}": v for k, v in digits_generation_scores(real).items()} | {
        f"noise_{k}": v for k, v in digits_generation_scores(noise).items()}


def measure(*, preset="quick", batch=64, sample_batch=64,
            samplers=(("ddpm", None), ("ddim", 100), ("ddim", 50))):
    """Rows of sampler, steps, images, seconds and images/s (Keras, ONNX Runtime) and, for the
    trained quick model, the digits scores of the ONNX samples and the two baselines."""
    from kzoo.export import export
    from kzoo.infer import OnnxModel

    model, trained = _model(preset)
    scores_of = None
    base = {}
    if trained:
        from kzoo.metrics import digits_generation_scores

        def scores_of(images):
            return digits_generation_scores(images.astype(np.float32) / 127.5 - 1.0)

        base = baselines(batch, model.image_size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export(model, name="ddpm", out=tmp, formats="onnx")
        onnx = OnnxModel(f"{tmp}/ddpm")
        model.sample(min(batch, sample_batch), sampler="ddim", steps=2, batch_size=sample_batch)  # trace
        onnx.diffusion_sample(min(batch, sample_batch), sampler="ddim", steps=2, batch_size=sample_batch)
        for sampler, steps in samplers:
            n_steps = steps or model.num_timesteps
            t = time.perf_counter()
            model.sample(batch, sampler=sampler, steps=n_steps, seed=0, batch_size=sample_batch)
            keras_s = time.perf_counter() - t
            t = time.perf_counter()
            images = onnx.diffusion_sample(batch, sampler=sampler, steps=n_steps, seed=0,
                                           batch_size=sample_batch)
            onnx_s = time.perf_counter() - t
            row = {"sampler": sampler, "steps": n_steps, "batch": batch, "sample_batch": sample_batch,
                   "image_size": model.image_size, "trained": trained, "keras_seconds": keras_s,
                   "keras_images_per_s": batch / keras_s, "onnx_seconds": onnx_s,
                   "onnx_images_per_s": batch / onnx_s}
            if scores_of is not None:
                row.update({f"samples_{k}": v for k, v in scores_of(images).items()}, **base)
            rows.append(row)
            quality = (f", FD {row['samples_frechet_distance']:.1f} (real {base['real_frechet_distance']:.1f}, "
                       f"noise {base['noise_frechet_distance']:.1f})" if scores_of else "")
            print(f"  ddpm {sampler} {n_steps} steps: keras {keras_s:.1f} s, onnx {onnx_s:.1f} s"
                  f"{quality}", flush=True)
    return rows


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measure(**({"preset": sys.argv[1]} if len(sys.argv) > 1 else {})), indent=1))
