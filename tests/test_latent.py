"""kzoo.latent and `kzoo latent`: tiny models, a fake StyleGAN2, bad input."""

import keras
import numpy as np
import pytest
from PIL import Image

from kzoo import latent
from kzoo.cli import main
from kzoo.errors import KzooError
from kzoo.zoo import create_model, tiny_overrides


class FakeStyleGAN:
    """The duck-typed StyleGAN2 protocol kzoo.latent uses, on a 16x16 toy network:
    3 resolutions (4, 8, 16) -> num_ws 6, as StyleGAN2's layout gives."""

    z_dim, w_dim, num_ws = 8, 5, 6

    def __init__(self):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((self.z_dim, self.w_dim)).astype("float32") / 3
        self.b = rng.standard_normal((self.num_ws, self.w_dim, 256)).astype("float32") / 4
        self.w_avg = np.zeros(self.w_dim, "float32") + 0.1

    def mapping(self, z):
        w = keras.ops.tanh(keras.ops.matmul(keras.ops.convert_to_tensor(z, "float32"), self.a))
        return keras.ops.repeat(keras.ops.expand_dims(w, 1), self.num_ws, axis=1)

    def synthesize(self, ws, noise="random"):
        assert noise in ("random", "zero")
        h = keras.ops.einsum("niw,iwp->np", keras.ops.convert_to_tensor(ws, "float32"), self.b)
        return keras.ops.reshape(keras.ops.tanh(h), (-1, 16, 16, 1))

    def truncate(self, ws, psi):
        return self.w_avg + psi * (keras.ops.convert_to_tensor(ws) - self.w_avg)


def _png(path):
    with Image.open(path) as img:
        return np.asarray(img)


# --- pure parts ----------------------------------------------------------------

def test_slerp_keeps_the_norm_of_gaussian_endpoints_and_hits_them():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 64))
    path = latent.slerp(a, b, np.linspace(0, 1, 9))
    np.testing.assert_allclose(path[0], a, atol=1e-5)
    np.testing.assert_allclose(path[-1], b, atol=1e-5)
    middle = np.linalg.norm(path[4])
    assert middle > 0.95 * min(np.linalg.norm(a), np.linalg.norm(b))  # a line dips to ~0.7
    assert np.linalg.norm(latent.lerp(a, b, [0.5])[0]) < 0.8 * middle


def test_truncated_normal_resamples_only_large_values():
    z = latent.truncated_normal(np.random.default_rng(0), (100, 32), 0.5)
    assert np.abs(z).max() <= 0.5
    z0 = latent.truncated_normal(np.random.default_rng(0), (100, 32), None)
    small = np.abs(z0) <= 0.5
    np.testing.assert_array_equal(z[small], z0[small])


def test_crossover_ranges():
    assert [latent.crossover_range(c, 18) for c in latent.CROSSOVERS] == [(0, 3), (3, 7), (7, 18)]
    assert [latent.crossover_range(c, 8) for c in latent.CROSSOVERS] == [(0, 3), (3, 5), (5, 8)]
    assert [latent.crossover_range(c, 6) for c in latent.CROSSOVERS] == [(0, 1), (1, 3), (3, 6)]
    assert latent.crossover_range("2:4", 6) == (2, 4)
    for bad in ("0:7", "3:3", "middling"):
        with pytest.raises(KzooError):
            latent.crossover_range(bad, 6)


def test_style_mixing_info_offers_the_crossover_ranges_of_a_synthesis_beside_its_mapping():
    assert latent.crossover_ranges(18) == {"coarse": [0, 3], "middle": [3, 7], "fine": [7, 18]}
    assert latent.crossover_ranges(4) == {"coarse": [0, 1], "middle": [1, 4], "fine": None}
    group = {"id": "g1", "members": ["sg_generator", "sg_mapping", "sg_synthesis"]}
    ws = {"name": "ws", "shape": [None, 8, 16]}
    infos = {"sg_generator": {"endpoint": "generator", "group": group},
             "sg_mapping": {"endpoint": "mapping", "group": group},
             "sg_synthesis": {"endpoint": "synthesis", "group": group, "inputs": [ws]}}
    assert latent.style_mixing_info(infos) == {"sg_synthesis": {
        "mapping": "sg_mapping", "num_ws": 8, "crossovers": {"coarse": [0, 3], "middle": [3, 5], "fine": [5, 8]}}}
    # no mapping served beside it (or one of another export): no view
    assert latent.style_mixing_info({"sg_synthesis": infos["sg_synthesis"]}) == {}
    other = {**infos, "sg_mapping": {"endpoint": "mapping", "group": {"id": "g0", "members": group["members"]}}}
    assert latent.style_mixing_info(other) == {}


def test_expression():
    assert latent.parse_expression("9-4+7") == (9, 4, 7)
    with pytest.raises(KzooError, match="A-B"):
        latent.parse_expression("3+3-8")


# --- operations on tiny models ------------------------------------------------------

@pytest.fixture(scope="module")
def spaces():
    return {"dcgan": latent.latent_space(create_model("dcgan", **tiny_overrides("dcgan"), seed=0)),
            "cgan": latent.latent_space(create_model("cgan", **{**tiny_overrides("cgan"), "num_classes": 10},
                                                     seed=0)),
            "vae": latent.latent_space(create_model("vae", **tiny_overrides("vae"), seed=0)),
            "style": latent.latent_space(FakeStyleGAN(), "fake-stylegan2")}


def test_kinds(spaces):
    assert {k: s.kind for k, s in spaces.items()} == {"dcgan": "z", "cgan": "zy", "vae": "z", "style": "w"}
    with pytest.raises(KzooError, match="no latent space"):
        latent.latent_space(create_model("unet", **tiny_overrides("unet")))


@pytest.mark.parametrize("name", ["dcgan", "cgan", "vae", "style"])
def test_interpolate_and_truncate_grids(spaces, name, tmp_path):
    space = spaces[name]
    out = latent.interpolate(space, tmp_path / "i.png", rows=2, cols=5)
    assert out["method"] == ("lerp in w" if name == "style" else "slerp in z")
    assert _png(tmp_path / "i.png").shape[:2] == (2 + 2 * 66, 2 + 5 * 66)  # 16px cells upscaled to 64
    out = latent.truncate(space, tmp_path / "t.png", rows=2, **({"psi": [1.0, 0.0]} if name == "style" else {}))
    img = _png(tmp_path / "t.png")
    assert img.shape[1] == 2 + (2 if name == "style" else 4) * 66
    if name == "style":  # psi 0: every row is w_avg's image
        a, b = img[2:66, 68:132], img[68:132, 68:132]
        np.testing.assert_array_equal(a, b)


def test_style_mix_copies_the_crossover_styles(spaces, tmp_path):
    space = spaces["style"]
    out = latent.style_mix(space, tmp_path / "m.png", rows=2, cols=3, crossover="0:6")
    assert out["styles"] == [0, 6]
    img = _png(tmp_path / "m.png")
    assert img.shape[:2] == (2 + 3 * 66, 2 + 4 * 66)
    # every style from B: each cell equals its column's source B
    np.testing.assert_array_equal(img[68:132, 68:132], img[2:66, 68:132])
    with pytest.raises(KzooError, match="StyleGAN2"):
        latent.style_mix(spaces["vae"], tmp_path / "no.png")
    assert not (tmp_path / "no.png").exists()


@pytest.mark.parametrize("name", ["cgan", "vae"])
def test_arithmetic_reports_target_share_beside_random(spaces, name, tmp_path):
    out = latent.arithmetic(spaces[name], tmp_path / "a.png", expression="3-3+8", num=8, show=4)
    assert out["target"] == 8 and 0.0 <= out["target_share"] <= 1.0
    assert 0.0 <= out["random_latent_share"] <= 1.0
    assert _png(tmp_path / "a.png").shape[:2] == (2 + 4 * 66, 2 + 4 * 66)


@pytest.mark.parametrize("name", ["cgan", "vae", "style"])
def test_project_beats_the_mean_latent(spaces, name, tmp_path):
    space = spaces[name]
    if name == "style":  # targets the model can make: projection must approach them
        images = space.render(space.latents(np.random.default_rng(5).standard_normal((4, 8))))
        out = latent.project(space, tmp_path / "p.png", images=images, steps=60, perceptual_weight=0.0,
                             space_name="w+", random=8)
    else:
        out = latent.project(space, tmp_path / "p.png", num=4, steps=5, random=8)
    if name == "vae":  # untrained: z = 0 is a dead-ReLU saddle of its decoder, nothing moves
        assert "psnr_encoder" in out and out["psnr_projection"] >= out["psnr_mean_latent"]
    else:
        assert out["psnr_projection"] > out["psnr_mean_latent"]
    if name != "style":  # held-out digits: the classifier's reading of every row
        assert 0.0 <= out["label_kept_projection"] <= 1.0 and "label_kept_target" in out
    rows = 5 if name == "vae" else 4  # targets, mean, best-of-N, (encoder), projection
    assert _png(tmp_path / "p.png").shape[0] == 2 + rows * 66


# --- the command line ------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["latent", "truncate", "x", "--psi", "1.5"], "--psi: must be comma-separated numbers in [0, 1]"),
    (["latent", "truncate", "x", "--psi", "-0.1"], "--psi"),
    (["latent", "bend", "x"], "invalid choice: 'bend'"),
    (["latent", "mix", "x", "--crossover", "everything"], "--crossover"),
    (["latent", "arithmetic", "x", "--expr", "3*8"], "A-B+C"),
])
def test_cli_bad_arguments_are_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_cli_crossover_outside_the_layers_and_source_without_latent(spaces, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(latent, "open_latent", lambda source: spaces["style"])
    out = tmp_path / "out"
    assert main(["latent", "mix", "fake", "--crossover", "2:9", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the model has 6 ws" in err[0], err
    assert main(["latent", "truncate", "fake", "--threshold", "1", "--out", str(out)]) == 2
    assert "--psi" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.undo()

    unet = tmp_path / "unet.keras"
    create_model("unet", **tiny_overrides("unet")).save(unet)
    assert main(["latent", "interpolate", str(unet), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no latent space" in err[0], err
    assert not out.exists()


def test_cli_writes_the_grid(spaces, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(latent, "open_latent", lambda source: spaces["style"])
    assert main(["latent", "mix", "fake", "--rows", "2", "--cols", "2", "--crossover", "fine",
                 "--out", str(tmp_path)]) == 0
    assert '"styles": [3, 6]' in capsys.readouterr().out
    assert _png(tmp_path / "mix.png").shape[:2] == (2 + 3 * 66, 2 + 3 * 66)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.png"]  # no temporary files left


def test_cli_refuses_an_export(tmp_path, capsys):
    version = tmp_path / "export" / "dcgan" / "1"
    version.mkdir(parents=True)
    (version / "kzoo.json").write_text("{}")
    out = tmp_path / "out"
    assert main(["latent", "interpolate", str(version.parent), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is an export" in err[0], err
    assert not out.exists()


def test_kzoo_stylegan2_speaks_the_protocol(tmp_path):
    from kzoo.zoo import model_names

    if "stylegan2" not in model_names():
        pytest.skip("kzoo's StyleGAN2 is not in this tree")
    space = latent.latent_space(create_model("stylegan2", **tiny_overrides("stylegan2"), seed=0), "sg2")
    assert (space.kind, space.num_ws) == ("w", 4)  # 8x8: resolutions 4 and 8
    assert latent.style_mix(space, tmp_path / "m.png", rows=2, cols=2, crossover="middle")["styles"] == [1, 4]
    latent.truncate(space, tmp_path / "t.png", rows=2, psi=[1.0, 0.0])
    images = space.render(space.latents(np.random.default_rng(1).standard_normal((2, space.z_dim))))
    out = latent.project(space, tmp_path / "p.png", images=images, steps=20, perceptual_weight=0.0,
                         space_name="w", random=4)
    assert out["psnr_projection"] > out["psnr_mean_latent"]


def test_cli_projects_image_files(spaces, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(latent, "open_latent", lambda source: spaces["style"])
    files = []
    for i, value in enumerate((40, 200)):
        files.append(tmp_path / f"in{i}.png")
        Image.fromarray(np.full((20, 24, 3), value, np.uint8)).save(files[-1])  # resized, made gray
    out = tmp_path / "out"
    assert main(["latent", "project", "fake", "--images", *map(str, files), "--steps", "3",
                 "--perceptual-weight", "0", "--random", "4", "--space", "w+", "--out", str(out)]) == 0
    assert '"images": 2' in capsys.readouterr().out
    assert _png(out / "project.png").shape[:2] == (2 + 4 * 66, 2 + 2 * 66)
    assert main(["latent", "project", "fake", "--images", str(tmp_path / "missing.png"), "--out", str(out)]) == 2
    assert "cannot read image" in capsys.readouterr().err
