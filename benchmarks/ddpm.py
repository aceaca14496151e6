"""DDPM sampling speed: the ancestral sampler over all T steps vs DDIM with 50 / 100 steps,
in Keras (`DDPM.sample`, the EMA eps-network called once per step) and through the exported
eps-network on ONNX Runtime (`kzoo.infer.OnnxModel.diffusion_sample`, no TensorFlow in the
loop). The model is the ddpm recipe's network at the chosen preset; its weights do not change
the cost, so it is not trained here.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time


def measure(*, preset="quick", batch=16, samplers=(("ddpm", None), ("ddim", 100), ("ddim", 50))):
    from kzoo.export import export
    from kzoo.infer import OnnxModel
    from kzoo.recipes import ddpm
    from kzoo.recipes.runner import resolve_config

    cfg, _, _, _ = resolve_config(ddpm.RECIPE, ["--preset", preset])
    cfg = dataclasses.replace(cfg, jit_compile=False)
    data, _ = ddpm.RECIPE.load_data(cfg)
    model = ddpm.RECIPE.build(cfg, data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export(model, name="ddpm", out=tmp, formats="onnx")
        onnx = OnnxModel(f"{tmp}/ddpm")
        model.sample(batch, sampler="ddim", steps=2)  # warm-up / trace
        onnx.diffusion_sample(batch, sampler="ddim", steps=2)
        for sampler, steps in samplers:
            n_steps = steps or model.num_timesteps
            t = time.perf_counter()
            model.sample(batch, sampler=sampler, steps=n_steps, seed=0)
            keras_s = time.perf_counter() - t
            t = time.perf_counter()
            onnx.diffusion_sample(batch, sampler=sampler, steps=n_steps, seed=0)
            onnx_s = time.perf_counter() - t
            rows.append({"sampler": sampler, "steps": n_steps, "batch": batch,
                         "image_size": cfg.image_size, "keras_seconds": keras_s,
                         "keras_images_per_s": batch / keras_s, "onnx_seconds": onnx_s,
                         "onnx_images_per_s": batch / onnx_s})
            print(f"  ddpm {sampler} {n_steps} steps: keras {keras_s:.1f} s, onnx {onnx_s:.1f} s", flush=True)
    return rows
