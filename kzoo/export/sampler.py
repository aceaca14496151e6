"""The sampler endpoint of a diffusion export: noise in, images out, in one graph.

A DDPM export serves its ε-network (`<model>`, one denoising step per request) and,
beside it, `<model>_sampler`: the whole reverse process of `kzoo.diffusion.sample` as
one TensorFlow graph (`tf.while_loop` over the visited timesteps; tf2onnx turns it into
one ONNX `Loop` node), so a TF Serving or Triton client sends one request per batch of
images instead of one per step (DESIGN.md, "One request, one answer").

Inputs (all batch-first, so that every input is split and joined along the batch axis
by TF Serving's and kzoo serve's request batching):

- `noise` (batch, H, W, C) float32: x_T ~ N(0, I).
- `step_noise` (batch, K, H, W, C) float32: the per-step draws z_1 .. z_K in the order
  `kzoo.diffusion.sample` draws them (DDPM: one per visited t > 0; DDIM: one per step
  when η > 0). K may exceed what the request needs (the rest is unused) and is 0 for a
  deterministic DDIM request. Randomness never lives in the graph (kzoo.json
  `processing`): the same noise gives the same images as the Python loop.
- `steps` (batch,) int32: denoising steps N in 1..T.
- `eta` (batch,) float32: DDIM's η in [0, 1] (ignored by DDPM).
- `sampler` (batch,) int32: 0 = DDIM (Song et al., 2021), 1 = DDPM ancestral (Ho et al.).

Each example carries its own steps / η / sampler: the loop runs max(steps) iterations
and an example whose N steps are done keeps its x (its timesteps are its own N's), so
requests with different settings can share a batch. Output `images` (batch, H, W, C):
the final x_0 in [-1, 1] (unclipped, like `sample`'s; consumers clip).

The arithmetic is `kzoo.diffusion`'s, option for option (`SamplerOptions`, the model's,
fixed at export): timesteps from `NoiseSchedule.timesteps` ("even", "leading", "linspace",
"trailing" spacings, computed from `steps` in the graph with the same float64 NumPy
expressions), `previous_timesteps`, `denoise` (prediction type, clipping, dynamic
thresholding, `use_clipped_model_output`), `ddpm_step`, `ddim_step`; float64 within a
step and float32 between steps, as NumPy computes it there.

Bad input is refused before any step runs (`tf.debugging` asserts at graph entry:
TensorFlow's INVALID_ARGUMENT, naming the input): `steps` outside 1..T or visiting
timesteps outside 0..T-1, `eta` outside [0, 1], `sampler` not 0/1, non-finite `noise`
or `step_noise`, fewer step-noise draws than the request needs, batch sizes that
differ. ONNX has no asserts: `kzoo.infer.OnnxModel` (and so kzoo serve) runs the same
checks (`check_sampler_feeds`) before the session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kzoo.errors import KzooError

ENDPOINT = "sampler"
SAMPLER_IDS = {"ddim": 0, "ddpm": 1}


def card_endpoint(eps_spec):
    """The sampler's `kzoo.card.Endpoint`, its image shape that of the ε-network's `x_t`."""
    from kzoo.card import IMAGE_RANGE, Endpoint, Tensor

    x_entry = next(e for e in eps_spec["inputs"] if e["role"] != "timestep")
    shape = tuple(x_entry["shape"][1:])
    if any(d is None for d in shape):
        raise KzooError("a sampler endpoint needs a fixed image size; this eps-network has "
                        f"shape {x_entry['shape']}")
    return Endpoint(ENDPOINT, inputs=(
        Tensor("noise", "latent", shape, description="x_T ~ N(0, I), one image-shaped array per image"),
        Tensor("step_noise", "tensor", (None, *shape),
               description="the K per-step N(0, I) draws in kzoo.diffusion.sample's order (DDPM: "
                           "one per visited t > 0, DDIM: one per step if eta > 0); K may be 0"),
        Tensor("steps", "tensor", (), dtype="int32", description="denoising steps, 1..T"),
        Tensor("eta", "tensor", (), description="DDIM stochasticity in [0, 1] (DDPM ignores it)"),
        Tensor("sampler", "tensor", (), dtype="int32", description="0: DDIM, 1: DDPM ancestral")),
        outputs=(Tensor("images", "image", shape, range=IMAGE_RANGE,
                        description="the sampled x_0 (clip to [-1, 1])", clip=True),))


def draws_needed(schedule, options, steps, eta, sampler):
    """Step-noise draws per example (NumPy; `kzoo.diffusion.noise_draws` per example)."""
    from kzoo.diffusion import noise_draws

    names = {v: k for k, v in SAMPLER_IDS.items()}
    return np.array([noise_draws(schedule, names[int(s)], int(n), float(e), options)
                     for n, e, s in zip(steps, eta, sampler)], np.int64)


def check_feeds(feeds, schedule, options):
    """The graph-entry checks in NumPy (for ONNX, which has no asserts); a KzooError
    naming the input, else None."""
    noise, step_noise = np.asarray(feeds["noise"]), np.asarray(feeds["step_noise"])
    steps, eta, sampler = (np.asarray(feeds[k]) for k in ("steps", "eta", "sampler"))
    batch = len(noise)
    for name, value in (("step_noise", step_noise), ("steps", steps), ("eta", eta), ("sampler", sampler)):
        if len(value) != batch:
            raise KzooError(f"input {name} has batch {len(value)}, noise has {batch}")
    for name, value in (("noise", noise), ("step_noise", step_noise)):
        if not np.all(np.isfinite(value)):
            raise KzooError(f"input {name} contains NaN or infinity")
    T = schedule.num_timesteps
    if steps.size and (steps.min() < 1 or steps.max() > T):
        raise KzooError(f"input steps must be in 1..{T} (the model's diffusion timesteps), got "
                        f"{steps.min()}..{steps.max()}")
    if eta.size and not (np.all(eta >= 0) and np.all(eta <= 1)):
        raise KzooError(f"input eta must be in [0, 1], got {eta.min()}..{eta.max()}")
    if sampler.size and not np.all(np.isin(sampler, list(SAMPLER_IDS.values()))):
        raise KzooError("input sampler must be 0 (DDIM) or 1 (DDPM)")
    try:
        need = draws_needed(schedule, options, steps, eta, sampler)
    except KzooError as e:
        raise KzooError(f"input steps: {e}") from None
    if need.size and need.max() > step_noise.shape[1]:
        raise KzooError(f"input step_noise has fewer draws per image ({step_noise.shape[1]}) than "
                        f"these steps need ({int(need.max())})")


def step_noise_for(draws, batch):
    """`step_noise` (batch, K, ...) from a list of K draws of shape (batch, ...)."""
    if not draws:
        return None
    return np.stack(draws, axis=1).astype(np.float32)


# --- the graph -------------------------------------------------------------------------
def timestep_table(tf, n, max_n, T, spacing, steps_offset):
    """(batch, max_n) int64: column j is the j-th visited timestep of each example's N = `n`
    steps (decreasing; columns j >= N are unspecified), as `NoiseSchedule.timesteps`."""
    n64 = tf.cast(n, tf.int64)[:, None]
    j = tf.range(max_n, dtype=tf.int64)[None, :]
    i = n64 - 1 - j  # index into the increasing sequence
    if spacing == "even":
        return i * T // n64
    if spacing == "leading":
        return i * (T // n64) + steps_offset
    f64 = tf.float64
    if spacing == "linspace":  # np.linspace(0, T-1, N): i * ((T-1)/(N-1)), the last exactly T-1
        step = tf.cast(T - 1, f64) / tf.cast(tf.maximum(n64 - 1, 1), f64)
        y = tf.where(i == n64 - 1, tf.cast(T - 1, f64), tf.cast(i, f64) * step)
        y = tf.where(n64 == 1, tf.zeros_like(y), y)
        return tf.cast(tf.round(y), tf.int64)  # round half to even, as np.round
    if spacing == "trailing":  # np.round(np.arange(T, 0, -T/N)) - 1: T + j * delta
        ratio = tf.cast(T, f64) / tf.cast(n64, f64)
        delta = (tf.cast(T, f64) - ratio) - tf.cast(T, f64)  # np.arange's step: (start+step)-start
        y = tf.cast(T, f64) + tf.cast(j, f64) * delta
        return tf.cast(tf.round(y), tf.int64) - 1
    raise KzooError(f"unknown timestep spacing {spacing!r}")


def trailing_length(tf, n, T):
    """len(np.arange(T, 0, -T/N)) = ceil(T / (T/N)) (NumPy's float arange length)."""
    f64 = tf.float64
    ratio = tf.cast(T, f64) / tf.cast(n, f64)
    return tf.cast(tf.math.ceil(tf.cast(T, f64) / ratio), tf.int32)


def _quantile(tf, flat, q):
    """np.quantile(flat, q, axis=1) with linear interpolation (NumPy's default)."""
    n = tf.shape(flat)[1]
    s = tf.sort(flat, axis=1)
    pos = q * tf.cast(n - 1, tf.float64)
    lo = tf.cast(tf.floor(pos), tf.int32)
    hi = tf.minimum(lo + 1, n - 1)
    frac = pos - tf.floor(pos)
    a, b = s[:, lo], s[:, hi]
    # NumPy's _lerp: a + (b - a) t, or b - (b - a)(1 - t) for t >= 0.5
    return tf.where(frac >= 0.5, b - (b - a) * (1.0 - frac), a + (b - a) * frac)


def _marker(x, t):
    """Where the ONNX sampler's loop calls the ε-network: an op tf2onnx keeps as it is
    (`Igamma`, which it cannot convert), replaced by the exported ε-network's own ONNX graph
    (`splice_network`)."""
    import tensorflow as tf

    return tf.math.igamma(x, tf.reshape(tf.cast(t, tf.float32), [-1, 1, 1, 1]))


def sampler_fn(network, eps_spec, schedule, options, eps_call=None):
    """`fn(noise, step_noise, steps, eta, sampler) -> {"images": x_0}` (see module docstring),
    calling the ε-network `network` (inputs as `eps_spec` names them) once per step, or
    `eps_call(x, t)` in its place."""
    import tensorflow as tf

    from kzoo.export.spec import call

    t_name = next(e["name"] for e in eps_spec["inputs"] if e["role"] == "timestep")
    x_name = next(e["name"] for e in eps_spec["inputs"] if e["role"] != "timestep")
    out_name = eps_spec["outputs"][0]["name"]
    T = int(schedule.num_timesteps)
    spacing, offset = options.timestep_spacing, int(options.steps_offset)
    f64 = tf.float64
    abar = np.asarray(schedule.alphas_cumprod, np.float64)  # a graph constant where used (an
    # eager tensor here would be a captured input that tf2onnx leaves as a graph input)
    final_ddim = 1.0 if options.set_alpha_to_one else float(schedule.alphas_cumprod[0])

    def cumprod(t, final):
        return tf.where(t < 0, tf.constant(final, f64), tf.gather(tf.constant(abar), tf.maximum(t, 0)))

    def bcast(v):
        return tf.reshape(v, [-1, 1, 1, 1])

    def denoise(out, t, x):
        a = bcast(cumprod(t, 1.0))
        if options.prediction_type == "epsilon":
            x0, eps = (x - tf.sqrt(1.0 - a) * out) / tf.sqrt(a), out
        elif options.prediction_type == "sample":
            x0 = out
            eps = (x - tf.sqrt(a) * x0) / tf.sqrt(1.0 - a)
        else:
            x0 = tf.sqrt(a) * x - tf.sqrt(1.0 - a) * out
            eps = tf.sqrt(a) * out + tf.sqrt(1.0 - a) * x
        if options.thresholding:
            flat = tf.reshape(x0, [tf.shape(x0)[0], -1])
            s = tf.clip_by_value(_quantile(tf, tf.abs(flat), options.dynamic_thresholding_ratio),
                                 1.0, options.sample_max_value)[:, None]
            x0 = tf.reshape(tf.clip_by_value(flat, -s, s) / s, tf.shape(x0))
        elif options.clip_sample:
            r = options.clip_sample_range
            x0 = tf.clip_by_value(x0, -r, r)
        if options.use_clipped_model_output:
            eps = (x - tf.sqrt(a) * x0) / tf.sqrt(1.0 - a)
        return x0, eps

    def fn(noise, step_noise, steps, eta, sampler):
        batch = tf.shape(noise)[0]
        asserts = [
            tf.debugging.assert_equal(tf.shape(step_noise)[0], batch,
                                      message="input step_noise: its batch differs from noise's"),
            tf.debugging.assert_equal(tf.shape(steps)[0], batch,
                                      message="input steps: its batch differs from noise's"),
            tf.debugging.assert_equal(tf.shape(eta)[0], batch,
                                      message="input eta: its batch differs from noise's"),
            tf.debugging.assert_equal(tf.shape(sampler)[0], batch,
                                      message="input sampler: its batch differs from noise's"),
            tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(noise)),
                                ["input noise contains NaN or infinity"]),
            tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(step_noise)),
                                ["input step_noise contains NaN or infinity"]),
            tf.debugging.Assert(tf.reduce_all((steps >= 1) & (steps <= T)),
                                [f"input steps must be in 1..{T} (the model's diffusion timesteps)"]),
            tf.debugging.Assert(tf.reduce_all((eta >= 0.0) & (eta <= 1.0)),
                                ["input eta must be in [0, 1]"]),
            tf.debugging.Assert(tf.reduce_all((sampler == 0) | (sampler == 1)),
                                ["input sampler must be 0 (DDIM) or 1 (DDPM)"]),
        ]
        with tf.control_dependencies(asserts):
            n = tf.clip_by_value(steps, 1, T)
        max_n = tf.reduce_max(tf.concat([n, [1]], 0))
        table = timestep_table(tf, n, max_n, T, spacing, offset)  # (batch, max_n)
        valid = tf.range(max_n, dtype=tf.int32)[None, :] < n[:, None]
        ddpm = sampler == 1
        need = tf.where(ddpm, tf.reduce_sum(tf.cast(valid & (table > 0), tf.int32), 1),
                        tf.where(eta > 0, n, tf.zeros_like(n)))
        checks = [
            tf.debugging.Assert(tf.reduce_all(table[:, 0] <= T - 1) & tf.reduce_all(
                tf.gather(table, n - 1, batch_dims=1) >= 0),
                [f"input steps: with timestep_spacing={spacing!r} and steps_offset={offset} "
                 f"these steps visit timesteps outside 0..{T - 1}"]),
            tf.debugging.Assert(tf.reduce_all(need <= tf.shape(step_noise)[1]),
                                ["input step_noise has fewer draws per image than these steps need "
                                 "(DDPM: one per visited t > 0; DDIM: steps if eta > 0)"]),
        ]
        if spacing == "trailing":
            checks.append(tf.debugging.Assert(
                tf.reduce_all(trailing_length(tf, n, T) == n),
                ["input steps: timestep_spacing='trailing' gives a different number of timesteps "
                 "for these steps (NumPy's arange of T/steps)"]))
        with tf.control_dependencies(checks):
            x = tf.identity(noise)
        zero = tf.zeros_like(noise)[:, None]
        z_all = tf.concat([step_noise, zero], axis=1)  # index K: an unused draw never read
        eta64 = bcast(tf.cast(eta, f64))
        ddpm_b = tf.reshape(ddpm, [-1, 1, 1, 1])

        def body(j, x, k):
            active = j < n
            t = tf.where(active, table[:, tf.minimum(j, max_n - 1)], tf.zeros_like(table[:, 0]))
            nxt = tf.where(j + 1 < n, table[:, tf.minimum(j + 1, max_n - 1)], -tf.ones_like(t))
            if spacing == "even":
                prev_ddim = nxt
            else:  # DDIMScheduler.step: t - T // N
                prev_ddim = t - T // tf.cast(n, tf.int64)
            if eps_call is None:
                out = call(network, {x_name: x, t_name: tf.cast(t, tf.int32)})[out_name]
            else:
                out = eps_call(x, tf.cast(t, tf.int32))
            x64, out64 = tf.cast(x, f64), tf.cast(out, f64)
            x0, eps = denoise(out64, t, x64)
            z = tf.cast(tf.gather(z_all, tf.minimum(k, tf.shape(z_all)[1] - 1), batch_dims=1), f64)
            # DDPM (ddpm_step)
            a_t, a_s = bcast(cumprod(t, 1.0)), bcast(cumprod(nxt, 1.0))
            beta = 1.0 - a_t / a_s
            mean = (tf.sqrt(a_s) * beta / (1.0 - a_t)) * x0 + (
                tf.sqrt(1.0 - beta) * (1.0 - a_s) / (1.0 - a_t)) * x64
            if options.variance_type == "fixed_large":
                var = beta
            else:
                var = tf.maximum((1.0 - a_s) / (1.0 - a_t) * beta, 1e-20)
            noisy_ddpm = bcast(t) > 0
            x_ddpm = tf.where(noisy_ddpm, mean + tf.sqrt(var) * z, mean)
            # DDIM (ddim_step)
            a_s2 = bcast(cumprod(prev_ddim, final_ddim))
            sigma = eta64 * tf.sqrt((1.0 - a_s2) / (1.0 - a_t) * (1.0 - a_t / a_s2))
            x_ddim = tf.sqrt(a_s2) * x0 + tf.sqrt(tf.maximum(1.0 - a_s2 - sigma ** 2, 0.0)) * eps
            x_ddim = tf.where(eta64 > 0, x_ddim + sigma * z, x_ddim)
            new = tf.cast(tf.where(ddpm_b, x_ddpm, x_ddim), tf.float32)
            x = tf.where(bcast(active), new, x)
            drew = active & tf.where(ddpm, t > 0, eta > 0)
            return j + 1, x, k + tf.cast(drew, tf.int32)

        _, x, _ = tf.while_loop(lambda j, x, k: j < max_n, body,
                                (tf.constant(0, tf.int32), x, tf.zeros_like(n)),
                                shape_invariants=(tf.TensorShape([]), noise.shape, tf.TensorShape([None])))
        return {"images": x}

    return fn


def tensor_specs(spec):
    import tensorflow as tf

    return [tf.TensorSpec(e["shape"], e["dtype"], name=e["name"]) for e in spec["inputs"]]


def write_saved_model(network, eps_spec, spec, schedule, options, path):
    """The sampler as a SavedModel (`serving_default`) at `path`; returns the signatures."""
    import keras

    from kzoo.export.saved_model import SERVING_DEFAULT

    fn = sampler_fn(network, eps_spec, schedule, options)
    archive = keras.export.ExportArchive()
    archive.track(network)
    archive.add_endpoint(SERVING_DEFAULT, lambda *a: fn(*a), input_signature=tensor_specs(spec))
    archive.write_out(str(path), verbose=False)
    return [SERVING_DEFAULT]


def convert_onnx(eps_onnx, eps_spec, spec, schedule, options, path, opset):
    """The sampler as one ONNX model at `path`: the loop one `Loop` node whose body runs the
    exported ε-network `eps_onnx` (its model.onnx, with kzoo's fusions: `onnx_model.clean`)
    where the TensorFlow graph calls the network. Returns the opset."""
    import onnx
    import tensorflow as tf

    from kzoo.export import onnx_model

    specs = tensor_specs(spec)
    fn = tf.function(sampler_fn(None, eps_spec, schedule, options, eps_call=_marker),
                     input_signature=specs)
    import logging

    quiet = logging.getLogger("tf2onnx.tfonnx")  # it logs the marker as an unsupported op
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with onnx_model._quiet():
            import tf2onnx

            model, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=opset)
    finally:
        quiet.setLevel(level)
    _rename(model, {f"{e['name']}:0": e["name"] for e in spec["inputs"]},
            {o.name: e["name"] for o, e in zip(model.graph.output, spec["outputs"])})
    splice_network(model, onnx.load(str(eps_onnx)), eps_spec)
    onnx_model._check_converted(model, spec)
    if [n.op_type for n in model.graph.node].count("Loop") != 1:
        raise KzooError("tf2onnx did not convert the sampler loop into one ONNX Loop node")
    onnx_model.save(model, path)
    return opset


def splice_network(model, eps_model, eps_spec):
    """Replace the `_marker` node in `model`'s Loop body by `eps_model`'s graph: its nodes
    (names prefixed `eps/`), its initializers in the outer graph (a subgraph sees them), its
    `x_t` the marker's x and its `t` the marker's timestep back as int32."""
    from onnx import TensorProto, helper

    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    body = next(a.g for a in loop.attribute if a.name == "body")
    marks = [i for i, n in enumerate(body.node) if n.op_type == "Igamma"]
    if len(marks) != 1:
        raise KzooError("the sampler loop has no single network call to replace")
    mark = body.node[marks[0]]
    x_in, t_float, out = mark.input[0], mark.input[1], mark.output[0]
    t_name = next(e["name"] for e in eps_spec["inputs"] if e["role"] == "timestep")
    x_name = next(e["name"] for e in eps_spec["inputs"] if e["role"] != "timestep")
    out_name = eps_spec["outputs"][0]["name"]
    g = eps_model.graph
    names = {x_name: x_in, t_name: "eps/t_int", out_name: out}
    for init in g.initializer:
        names[init.name] = "eps/" + init.name
    for node in g.node:
        for o in node.output:
            names.setdefault(o, "eps/" + o)
    shape = helper.make_tensor("eps/t_shape", TensorProto.INT64, [1], [-1])
    new_nodes = [helper.make_node("Constant", [], ["eps/t_shape_c"], value=shape, name="eps/t_shape"),
                 helper.make_node("Reshape", [t_float, "eps/t_shape_c"], ["eps/t_flat"], name="eps/t_flat"),
                 helper.make_node("Cast", ["eps/t_flat"], ["eps/t_int"], to=TensorProto.INT32,
                                  name="eps/t_int")]
    for node in g.node:
        n = type(node)()
        n.CopyFrom(node)
        n.name = "eps/" + node.name
        for field in (n.input, n.output):
            renamed = [names.get(v, v) if v else v for v in field]
            del field[:]
            field.extend(renamed)
        new_nodes.append(n)
    for init in g.initializer:
        i = type(init)()
        i.CopyFrom(init)
        i.name = names[init.name]
        model.graph.initializer.append(i)
    kept = list(body.node[:marks[0]]) + new_nodes + list(body.node[marks[0] + 1:])
    del body.node[:]
    body.node.extend(kept)
    have = {(o.domain, o.version) for o in model.opset_import}
    for o in eps_model.opset_import:
        if o.domain not in {d for d, _ in have}:
            model.opset_import.append(o)


def _rename(model, inputs, outputs):
    """Name the ONNX graph's inputs and outputs as the card does (frozen graphs say `noise:0`)."""
    names = {**inputs, **outputs}

    def visit(graph):
        for node in graph.node:
            for field in (node.input, node.output):
                renamed = [names.get(n, n) for n in field]
                del field[:]
                field.extend(renamed)
            for attr in node.attribute:
                if attr.HasField("g"):
                    visit(attr.g)

    visit(model.graph)
    for v in list(model.graph.input) + list(model.graph.output):
        v.name = names.get(v.name, v.name)


# --- export ----------------------------------------------------------------------------
PARITY_CASES = (("ddim", 1, 0.0), ("ddim", 3, 0.0), ("ddim", 4, 0.5), ("ddpm", 3, 0.0))
PARITY_BATCH = 2


def parity_feeds(schedule, options, shape, seed):
    """{case: (sampler feeds, kzoo.diffusion.sample kwargs)}: `PARITY_CASES` (DDIM at several
    step counts, η = 0 and > 0 with given step noise, DDPM) on seeded noise."""
    from kzoo.diffusion import noise_draws

    rng = np.random.default_rng(seed)
    cases = {}
    for sampler, steps, eta in PARITY_CASES:
        steps = min(steps, schedule.num_timesteps)
        k = noise_draws(schedule, sampler, steps, eta, options)
        noise = [rng.standard_normal(shape).astype(np.float32) for _ in range(k + 1)]
        z = step_noise_for(noise[1:], shape[0])
        feeds = {"noise": noise[0], "step_noise": z if z is not None else np.zeros(
                     (shape[0], 0, *shape[1:]), np.float32),
                 "steps": np.full(shape[0], steps, np.int32), "eta": np.full(shape[0], eta, np.float32),
                 "sampler": np.full(shape[0], SAMPLER_IDS[sampler], np.int32)}
        cases[f"{sampler}_{steps}_eta{eta:g}"] = (feeds, {"sampler": sampler, "steps": steps,
                                                          "eta": eta, "noise": noise})
    return cases


def build_version(network, eps_spec, diffusion_info, out_dir, *, formats, opset, tolerance,
                  eps_onnx=None, seed=0, log=None):
    """Write the sampler endpoint into `out_dir` and measure its parity against
    `kzoo.diffusion.sample` over the Keras ε-network on the same noise.

    Returns the `kzoo.json` content (without name/version); raises `ParityError` when an
    artifact is off by more than `tolerance` of the output range.
    """
    import datetime as dt

    import keras

    from kzoo.diffusion import from_info, sample
    from kzoo.export import parity
    from kzoo.export.parity import ParityError, onnx_runner, versions as _versions
    from kzoo.export.spec import call

    log = log or (lambda msg: None)
    schedule, options = from_info(diffusion_info)
    spec = card_endpoint(eps_spec).spec()
    shape = (PARITY_BATCH, *spec["inputs"][0]["shape"][1:])
    t_name = next(e["name"] for e in eps_spec["inputs"] if e["role"] == "timestep")
    x_name = next(e["name"] for e in eps_spec["inputs"] if e["role"] != "timestep")
    out_name = eps_spec["outputs"][0]["name"]

    def eps_fn(x, t):
        return keras.ops.convert_to_numpy(call(network, {x_name: x, t_name: t})[out_name])

    info = {"format_version": 1, "created": dt.datetime.now(dt.timezone.utc).isoformat(), **spec,
            "files": {}, "parity": {}, "tolerance": tolerance, "versions": _versions(),
            "processing": {"noise": "x_T and step_noise ~ N(0, I), drawn by the client in "
                                    "kzoo.diffusion.sample's order (no randomness in the graph)",
                           "images": "x_0 in [-1, 1] (clip); uint8 round(clip((x + 1) / 2, 0, 1) * 255)"},
            "sampler": {"samplers": dict(SAMPLER_IDS), "options": options.config(),
                        "eps_endpoint": eps_spec["endpoint"]}}
    out_dir = Path(out_dir)
    runners = {}
    if "savedmodel" in formats:
        from kzoo.export.saved_model import load_signature

        info["signatures"] = write_saved_model(network, eps_spec, spec, schedule, options, out_dir)
        info["files"]["savedmodel"] = "saved_model.pb"
        runners["savedmodel"] = load_signature(out_dir)
    if "onnx" in formats:
        info["opset"] = convert_onnx(eps_onnx, eps_spec, spec, schedule, options,
                                     out_dir / "model.onnx", opset)
        info["files"]["onnx"] = "model.onnx"
        runners["onnx"] = onnx_runner(out_dir / "model.onnx")
    cases = parity_feeds(schedule, options, shape, seed)
    info["parity_inputs"] = {c: f"batch {PARITY_BATCH}, seeded noise; {k['sampler']} {k['steps']} "
                                f"steps, eta {k['eta']:g}" for c, (_, k) in cases.items()}
    reference = {c: {"images": sample(eps_fn, shape, schedule=schedule, options=options, **k)}
                 for c, (_, k) in cases.items()}
    problems = []
    for fmt, run in runners.items():
        info["parity"][fmt] = {c: parity.compare(reference[c], run(**feeds), spec)
                               for c, (feeds, _) in cases.items()}
        for c, figures in info["parity"][fmt].items():
            problems += [f"{fmt} ({c}) {b}" for b in parity.failures(figures, tolerance)]
        worst = max(f["max_rel"] for c in info["parity"][fmt].values() for f in c.values())
        log(f"  sampler {fmt}: max error {worst:.2g} of the output range vs kzoo.diffusion.sample")
    if problems:
        raise ParityError("the sampler endpoint failed the parity check, nothing was written: "
                          + "; ".join(problems))
    return info
