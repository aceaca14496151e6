"""The sampler endpoint (kzoo/export/sampler.py): kzoo.diffusion.sample in one graph."""

import re

import numpy as np
import pytest
import tensorflow as tf

from kzoo import diffusion
from kzoo.errors import KzooError
from kzoo.export import sampler as S
from kzoo.export.spec import describe
from kzoo.models.ddpm import DDPM, TINY

from tests.test_diffusion import RUNS, trajectory

SHAPE = (2, 8, 8, 1)


@pytest.fixture(scope="module")
def tiny():
    """A tiny DDPM whose ε-network is not ~0 (its last layer starts at zero)."""
    model = DDPM(**TINY)
    rng = np.random.default_rng(1)
    for w in model.ema_network.weights:
        w.assign(w.numpy() + 0.02 * rng.standard_normal(w.shape).astype("float32"))
    net = model.ema_network
    return model, net, describe("eps_model", net, model.card())


def graph(net, eps_spec, schedule, options):
    spec = S.card_endpoint(eps_spec).spec()
    return tf.function(S.sampler_fn(net, eps_spec, schedule, options), input_signature=S.tensor_specs(spec))


def feeds(noise, steps, eta, sampler, batch):
    z = S.step_noise_for(noise[1:], batch)
    return {"noise": noise[0], "step_noise": z if z is not None else np.zeros((batch, 0, *noise[0].shape[1:]),
                                                                               np.float32),
            "steps": np.full(batch, steps, np.int32), "eta": np.full(batch, eta, np.float32),
            "sampler": np.full(batch, S.SAMPLER_IDS[sampler], np.int32)}


def python_sample(net, schedule, options, sampler, steps, eta, noise):
    return diffusion.sample(lambda x, t: net.predict_on_batch({"x_t": x, "t": t}), noise[0].shape,
                            schedule=schedule, sampler=sampler, steps=steps, eta=eta, options=options,
                            noise=noise)


@pytest.mark.parametrize("spacing", diffusion.TIMESTEP_SPACINGS)
@pytest.mark.parametrize("T", [50, 1000])
def test_timesteps_in_graph_are_numpys_for_every_step_count(spacing, T):
    """Column j of the in-graph table is `NoiseSchedule.timesteps(N)[j]` for every N in 1..T
    (and "trailing"'s NumPy arange length check refuses the same N as the Python sampler)."""
    schedule = diffusion.NoiseSchedule(T)
    n = np.arange(1, T + 1, dtype=np.int32)
    table = S.timestep_table(tf, tf.constant(n), T, T, spacing, 0).numpy()
    lengths = S.trailing_length(tf, tf.constant(n), T).numpy()
    checked = 0
    for steps in n:
        try:
            want = schedule.timesteps(int(steps), spacing)
        except KzooError:
            assert spacing == "trailing" and lengths[steps - 1] != steps
            continue
        np.testing.assert_array_equal(table[steps - 1, :steps], want)
        checked += 1
    assert checked > T // 2


CASES = [("ddim", 3, 0.0), ("ddim", 4, 0.5), ("ddpm", 5, 0.0), ("ddpm", 50, 0.0)]
OPTIONS = {"kzoo": diffusion.KZOO, "diffusers": diffusion.DIFFUSERS,
           "trailing_v_noclip": diffusion.DIFFUSERS.replace(timestep_spacing="trailing", clip_sample=False,
                                                            prediction_type="v_prediction"),
           "linspace_threshold": diffusion.DIFFUSERS.replace(timestep_spacing="linspace", thresholding=True,
                                                             set_alpha_to_one=False)}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_graph_equals_the_python_sampler(tiny, name):
    """Same network, same noise: the graph's images are `kzoo.diffusion.sample`'s (DDIM at
    several step counts, η = 0 and 0.5 with given step noise, DDPM), per sampler option set."""
    model, net, eps_spec = tiny
    options = OPTIONS[name]
    fn = graph(net, eps_spec, model.schedule, options)
    rng = np.random.default_rng(3)
    for sampler, steps, eta in CASES:
        k = diffusion.noise_draws(model.schedule, sampler, steps, eta, options)
        noise = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(k + 1)]
        want = python_sample(net, model.schedule, options, sampler, steps, eta, noise)
        got = fn(**feeds(noise, steps, eta, sampler, SHAPE[0]))["images"].numpy()
        assert np.mean(np.abs(want) < 0.999) > 0.3  # not saturated by the clip: a real comparison
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{sampler} {steps} {eta}")


def test_examples_of_one_batch_keep_their_own_settings(tiny):
    """Requests joined into one batch (kzoo serve / TF Serving batching) with different
    steps, η and samplers: each example is what it is alone."""
    model, net, eps_spec = tiny
    fn = graph(net, eps_spec, model.schedule, diffusion.KZOO)
    rng = np.random.default_rng(4)
    parts, alone = [], []
    for sampler, steps, eta in CASES[:3]:
        k = diffusion.noise_draws(model.schedule, sampler, steps, eta, diffusion.KZOO)
        noise = [rng.standard_normal((1, 8, 8, 1)).astype(np.float32) for _ in range(k + 1)]
        f = feeds(noise, steps, eta, sampler, 1)
        alone.append(python_sample(net, model.schedule, diffusion.KZOO, sampler, steps, eta, noise))
        parts.append(f)
    width = max(p["step_noise"].shape[1] for p in parts)
    for p in parts:  # pad to one K: the extra draws are never read
        pad = width - p["step_noise"].shape[1]
        p["step_noise"] = np.concatenate([p["step_noise"], np.full((1, pad, 8, 8, 1), 7.0, np.float32)], 1)
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    got = fn(**joined)["images"].numpy()
    np.testing.assert_allclose(got, np.concatenate(alone), atol=1e-5)


@pytest.fixture(scope="module")
def converted():
    from kzoo.hub.convert import diffusers as conv
    from tests.hub.convert.test_diffusers import VARIANTS, folder

    return {name: conv.load_diffusers_folder(folder(name)) for name in VARIANTS}


@pytest.mark.parametrize("run_name", sorted(RUNS))
def test_graph_walks_diffusers_pipelines(converted, run_name):
    """The converted diffusers UNets with each recorded run's scheduler options and
    diffusers' own noise: the graph ends where DDPMPipeline / DDIMPipeline end."""
    from tests.hub.convert.test_diffusers import keras_tolerance

    run, arrays, schedule, options, kwargs = trajectory(run_name)
    net = converted[run["network"]].ema_network
    eps_spec = describe("eps_model", net, converted[run["network"]].card())
    fn = graph(net, eps_spec, schedule, options)
    batch = len(arrays["x_T"])
    got = fn(**feeds(kwargs["noise"], kwargs["steps"], kwargs["eta"], kwargs["sampler"], batch))["images"]
    error = np.abs(got.numpy() - arrays["samples"][-1]).max()
    assert error < keras_tolerance(arrays["samples"]), error


BAD = [("steps", np.array([0, 3], np.int32), "input steps must be in 1..50"),
       ("steps", np.array([3, 51], np.int32), "input steps must be in 1..50"),
       ("eta", np.array([0.0, 1.5], np.float32), "input eta must be in [0, 1]"),
       ("sampler", np.array([0, 2], np.int32), "input sampler must be 0 (DDIM) or 1 (DDPM)"),
       ("noise", np.full(SHAPE, np.nan, np.float32), "input noise contains NaN"),
       ("step_noise", np.full((2, 3, 8, 8, 1), np.inf, np.float32), "input step_noise contains NaN"),
       ("eta", np.array([0.5, 0.5], np.float32), "input step_noise has fewer draws")]


@pytest.mark.parametrize("name,value,message", BAD)
def test_bad_input_is_refused_before_any_step(tiny, name, value, message):
    """The graph's entry asserts (TF Serving: INVALID_ARGUMENT naming the input) and their
    NumPy twin (`check_feeds`, what OnnxModel and kzoo serve run before an ONNX session)."""
    model, net, eps_spec = tiny
    good = feeds([np.zeros(SHAPE, np.float32)], 3, 0.0, "ddim", 2)
    bad = {**good, name: value}
    with pytest.raises(KzooError, match=re.escape(message)):
        S.check_feeds(bad, model.schedule, diffusion.KZOO)
    fn = graph(net, eps_spec, model.schedule, diffusion.KZOO)
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message.split(" (")[0])):
        fn(**bad)
    S.check_feeds(good, model.schedule, diffusion.KZOO)  # and the good feeds pass both
    fn(**good)


def test_wrong_noise_shape_is_refused(tiny):
    model, net, eps_spec = tiny
    fn = graph(net, eps_spec, model.schedule, diffusion.KZOO)
    good = feeds([np.zeros(SHAPE, np.float32)], 3, 0.0, "ddim", 2)
    with pytest.raises((ValueError, TypeError)):
        fn(**{**good, "noise": np.zeros((2, 9, 8, 1), np.float32)})
    with pytest.raises(KzooError, match="input step_noise has batch 1, noise has 2"):
        S.check_feeds({**good, "step_noise": np.zeros((1, 0, 8, 8, 1), np.float32)}, model.schedule,
                      diffusion.KZOO)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    from kzoo.export import export

    model, _, _ = tiny
    root = tmp_path_factory.mktemp("sampler") / "export"
    return root, export(model, name="tiny", out=root, formats="savedmodel,onnx")


def test_a_ddpm_export_has_a_sampler_endpoint(exported):
    """`<model>_sampler` beside `<model>`: SavedModel + one ONNX model whose loop is one
    `Loop` node, the parity record per case within the tolerance, in models.config and with
    a Triton config."""
    import onnx

    root, results = exported
    assert [r.name for r in results] == ["tiny", "tiny_sampler"]
    eps, smp = results
    assert eps.info["sampler_endpoint"] == "tiny_sampler"
    assert smp.info["group"] == eps.info["group"]
    assert [e["name"] for e in smp.info["inputs"]] == ["noise", "step_noise", "steps", "eta", "sampler"]
    assert smp.info["diffusion"] == eps.info["diffusion"]
    assert sorted(smp.info["parity"]) == ["onnx", "savedmodel"]
    for cases in smp.info["parity"].values():
        assert sorted(cases) == ["ddim_1_eta0", "ddim_3_eta0", "ddim_4_eta0.5", "ddpm_3_eta0"]
        assert all(f["images"]["max_rel"] <= smp.info["tolerance"] for f in cases.values())
    graph_ops = [n.op_type for n in onnx.load(str(smp.path / "model.onnx")).graph.node]
    assert graph_ops.count("Loop") == 1
    assert 'name: "tiny_sampler"' in (root / "models.config").read_text()
    assert 'name: "tiny_sampler"' in (root / "tiny_sampler" / "config.pbtxt").read_text()


@pytest.mark.parametrize("backend", ["onnx", "savedmodel"])
def test_one_request_gives_the_loops_images(exported, backend):
    """`kzoo predict` uses the sampler endpoint, and one REST request to a served sampler
    returns the images of the Python loop over the eps endpoint for the same noise; bad input
    is a 400 naming it."""
    import requests

    from kzoo.infer import OnnxModel, predict
    from kzoo.serving.server import ModelServer

    root, _ = exported
    eps = OnnxModel(root / "tiny")
    want = eps.diffusion_sample(2, seed=5, sampler="ddim", steps=4, eta=0.5, raw=True)
    logs = []
    paths = predict(root / "tiny", out=root.parent / f"gen_{backend}", num=2, steps=4, eta=0.5, seed=5,
                    log=logs.append)
    assert "sampling with tiny_sampler (one request)" in logs and len(paths) == 2
    rng = np.random.default_rng(5)  # OnnxModel.diffusion_sample's draws for seed 5
    noise = [rng.standard_normal((2, 8, 8, 1)).astype(np.float32) for _ in range(5)]
    body = {"inputs": {"noise": noise[0].tolist(), "step_noise": np.stack(noise[1:], 1).tolist(),
                       "steps": [4, 4], "eta": [0.5, 0.5], "sampler": [0, 0]}}
    with ModelServer(root, backend=backend, port=0, grpc_port=0) as server:
        r = requests.post(server.rest_url + "/v1/models/tiny_sampler:predict", json=body, timeout=60)
        assert r.status_code == 200, r.text
        got = np.array(r.json()["outputs"], np.float32)
        np.testing.assert_allclose(got, want, atol=1e-5)
        bad = {"inputs": {**body["inputs"], "steps": [4, 51]}}
        r = requests.post(server.rest_url + "/v1/models/tiny_sampler:predict", json=bad, timeout=60)
        assert r.status_code == 400 and "input steps must be in 1..50" in r.json()["error"], r.text
        # gRPC, deterministic DDIM: no step noise at all (K = 0, which JSON cannot spell)
        from kzoo.serving.client import Client

        x_T = np.random.default_rng(6).standard_normal((2, 8, 8, 1)).astype(np.float32)
        got = Client(server.grpc_url).predict("tiny_sampler", {
            "noise": x_T, "step_noise": np.zeros((2, 0, 8, 8, 1), np.float32), "steps": [3, 3],
            "eta": [0.0, 0.0], "sampler": [0, 0]})["images"]
        want = eps.diffusion_sample(2, sampler="ddim", steps=3, noise=[x_T], raw=True)
        np.testing.assert_allclose(got, want, atol=1e-5)
