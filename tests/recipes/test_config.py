"""Recipe configuration: model options from their declarations, presets, flags, resolution."""

import dataclasses
import json

import pytest

from kzoo.errors import KzooError
from kzoo.recipes import cyclegan, dcgan, ddpm, deeplab, pix2pix, srgan, unet, wgan_gp
from kzoo.recipes.config import (
    ARCHITECTURE,
    FIXED,
    SCHEDULE,
    TrainConfig,
    changed_from,
    check_values,
    doc_section,
    from_record,
    load_preset,
    model_args,
    model_options,
    paper_config,
    resolve_config,
    resume_class,
    steps_per_epoch,
    total_steps,
)


def test_docstring_attributes_are_the_training_options_help():
    doc = """Summary.

    Attributes:
        width: int. Channels of the first conv;
            doubles per stage.
        a, b: shared text.

    Returns:
        Nothing.
    """
    assert doc_section(doc) == {"width": "int. Channels of the first conv; doubles per stage.",
                                "a": "shared text.", "b": "shared text."}
    assert doc_section("No sections.") == {}


def test_model_options_are_the_declarations():
    """A recipe's model options are its model's declaration (kzoo.options), inheritance
    written in code: cGAN and WGAN-GP extend DCGAN's, WGAN-GP less discriminator_norm."""
    from kzoo.options.dcgan import DCGAN_OPTIONS
    from kzoo.options.wgan_gp import WGAN_GP_OPTIONS
    from kzoo.recipes import cgan

    opts = dcgan.RECIPE.options
    assert opts is DCGAN_OPTIONS and model_options("dcgan") is DCGAN_OPTIONS
    assert list(opts) == ["image_size", "channels", "latent_dim", "width", "discriminator_norm",
                          "upsample", "num_classes", "seed"]
    assert (opts["width"].type, opts["width"].default, opts["width"].optional) == (int, 64, False)
    assert (opts["num_classes"].type, opts["num_classes"].optional) == (int, True)
    assert opts["latent_dim"].help == "Size of z ~ N(0, I)."
    wgan = wgan_gp.RECIPE.options
    assert wgan is WGAN_GP_OPTIONS and wgan.base is DCGAN_OPTIONS
    assert {"n_critic", "gp_weight", "critic_norm", "width", "latent_dim"} <= set(wgan)
    assert "discriminator_norm" not in wgan and "d_steps" not in DCGAN_OPTIONS
    assert cgan.RECIPE.options["width"] is DCGAN_OPTIONS["width"]  # --width of `kzoo train cgan`
    assert cgan.RECIPE.options["num_classes"].default == 10
    with pytest.raises(KzooError, match="unknown model 'dcgn' .did you mean dcgan"):
        model_options("dcgn")


def test_precedence_defaults_preset_flags():
    cfg, _, _, notes = resolve_config(dcgan.RECIPE, [], has_gpu=False)
    assert cfg.preset == "quick" and cfg.image_size == 32 and cfg.model["width"] == 32 and notes
    cfg, _, _, notes = resolve_config(dcgan.RECIPE, ["--preset", "paper"], has_gpu=False)
    assert (cfg.image_size, cfg.batch_size, cfg.learning_rate, cfg.beta_1) == (64, 128, 2e-4, 0.5)
    assert cfg.model == {"latent_dim": 100, "width": 64, "discriminator_norm": "batch",
                         "upsample": "transpose"}
    cfg, _, _, _ = resolve_config(dcgan.RECIPE, ["--preset", "quick", "--width", "16"], has_gpu=True)
    assert cfg.model["width"] == 16 and cfg.model["latent_dim"] == 64 and cfg.image_size == 32
    cfg, _, _, notes = resolve_config(wgan_gp.RECIPE, [], has_gpu=True)
    assert cfg.preset == "paper" and not notes
    assert (cfg.model["n_critic"], cfg.model["gp_weight"]) == (5, 10.0)
    assert (cfg.learning_rate, cfg.beta_1, cfg.beta_2) == (1e-4, 0.0, 0.9)


def test_each_default_is_written_once_in_the_model():
    """Paper model defaults are the constructors' own; shared names take the model's default."""
    for recipe, name, value in [(dcgan.RECIPE, "width", 64), (deeplab.RECIPE, "aspp_rates", (6, 12, 18)),
                                (unet.RECIPE, "norm", None), (cyclegan.RECIPE, "num_blocks", None),
                                (ddpm.RECIPE, "channel_mults", (1, 2, 2, 2))]:
        assert paper_config(recipe).model[name] == value
    assert paper_config(deeplab.RECIPE).image_size == 512 and paper_config(srgan.RECIPE).image_size == 96
    for field in ("width", "latent_dim", "channels", "levels", "num_blocks", "blocks"):
        assert all(field not in {f.name for f in dataclasses.fields(r.config_cls)}
                   for r in (dcgan.RECIPE, pix2pix.RECIPE, cyclegan.RECIPE, deeplab.RECIPE))
    # the data decides: not options
    for recipe, name in [(dcgan.RECIPE, "channels"), (dcgan.RECIPE, "num_classes"),
                         (pix2pix.RECIPE, "input_channels"), (unet.RECIPE, "num_classes")]:
        assert name not in paper_config(recipe).model


def test_none_is_a_value_of_optional_options():
    cfg, _, _, _ = resolve_config(cyclegan.RECIPE, ["--preset", "quick", "--num-blocks", "none"])
    assert cfg.model["num_blocks"] is None
    cfg, _, _, _ = resolve_config(pix2pix.RECIPE, ["--levels", "5", "--steps-per-epoch", "none"])
    assert cfg.model["levels"] == 5 and cfg.steps_per_epoch is None
    with pytest.raises(KzooError, match="invalid int value: 'none'"):
        resolve_config(pix2pix.RECIPE, ["--width", "none"])


def test_nested_model_table_in_a_preset_file(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('recipe = "dcgan"\nepochs = 3\n[model]\nwidth = 12\n')
    cfg, _, _, _ = resolve_config(dcgan.RECIPE, ["--preset", str(f)])
    assert (cfg.model["width"], cfg.epochs, cfg.preset) == (12, 3, str(f))
    cases = [("width = 12\n", "a model option: put it in the [model] table"),
             ("[model]\nwidht = 12\n", "unknown model option 'widht' of dcgan"),
             ("[model]\nwidth = 'wide'\n", "width must be int"),
             ("[model]\nwidth = 'none'\n", "width must be int"),
             ('recipe = "vae"\n', "is for the vae recipe, not dcgan"),
             ("epochs = \n", "is not valid TOML")]
    for text, message in cases:
        f.write_text(text)
        with pytest.raises(KzooError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_preset(dcgan.RECIPE, str(f))
    f.write_text('[model]\nnum_blocks = "none"\n')
    assert load_preset(cyclegan.RECIPE, str(f)) == ({}, {"num_blocks": None})


def test_packaged_presets_resolve():
    for recipe in (dcgan.RECIPE, deeplab.RECIPE, ddpm.RECIPE, srgan.RECIPE):
        for preset in ("paper", "quick"):
            resolve_config(recipe, ["--preset", preset])
    train, model = load_preset(deeplab.RECIPE, "quick")
    assert model["blocks"] == (1, 1, 1, 1) and train["scale_range"] == (0.75, 1.25)


def test_shared_names_have_one_value():
    cfg, _, _, _ = resolve_config(dcgan.RECIPE, ["--preset", "quick", "--seed", "7", "--image-size", "16"])
    args = model_args(cfg, "dcgan", channels=1)
    assert (args["seed"], args["image_size"], args["channels"]) == (7, 16, 1)
    assert "seed" not in cfg.model and "image_size" not in cfg.model
    cfg, _, _, _ = resolve_config(srgan.RECIPE, ["--preset", "quick"])
    assert "discriminator_width" not in model_args(cfg, "srresnet")  # only what the model takes


def test_changed_from_paper_by_option_name():
    cfg, _, _, _ = resolve_config(dcgan.RECIPE, ["--preset", "paper", "--width", "8", "--epochs", "2"])
    assert changed_from(cfg, paper_config(dcgan.RECIPE)) == {"width": 8, "epochs": 2}


def test_resume_reads_the_record_and_runs_of_earlier_kzoo(tmp_path):
    cfg, _, _, _ = resolve_config(pix2pix.RECIPE, ["--preset", "quick", "--levels", "4"])
    record = json.loads(json.dumps(dataclasses.asdict(cfg)))  # as config.json holds it
    train, model = from_record(pix2pix.RECIPE, record)
    assert model["levels"] == 4 and train["image_size"] == 64
    old = {"data": "builtin:photos/gray2color", "epochs": 10, "steps_per_epoch": 0, "image_size": 64,
           "width": 32, "levels": 0, "l1_weight": 100.0, "eval_images": 24, "channels": 0, "seed": 0}
    train, model = from_record(pix2pix.RECIPE, old)
    assert train["steps_per_epoch"] is None and train["eval_samples"] == 24 and "channels" not in train
    assert model == {"width": 32, "levels": None, "l1_weight": 100.0}
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": old}))
    cfg, out, resume, _ = resolve_config(pix2pix.RECIPE, ["--resume", "--out", str(run), "--epochs", "12"])
    assert resume and cfg.epochs == 12 and cfg.model["width"] == 32 and cfg.model["levels"] is None


def test_steps_per_epoch_has_one_home():
    class Data:
        num_examples = 100

    assert steps_per_epoch(TrainConfig(batch_size=8), Data) == 12
    assert steps_per_epoch(TrainConfig(batch_size=8), Data, minibatches=5) == 2
    assert steps_per_epoch(TrainConfig(batch_size=500), Data) == 1
    assert total_steps(TrainConfig(epochs=3, batch_size=8), Data) == 36
    assert total_steps(TrainConfig(epochs=3, steps_per_epoch=5), Data) == 15


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--steps-per-epoch", "0"], "--steps-per-epoch must be >= 1 (or none"),
    (["--eval-samples", "-1"], "--eval-samples must be >= 0"),
    (["--strategy", "ring"], "--strategy must be"),
    (["--data", "/no/such/folder"], "--data '/no/such/folder' does not exist or is not a folder"),
    (["--preset", "nope"], "unknown preset 'nope' for dcgan"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_options(argv, message):
    with pytest.raises(KzooError, match=message.replace("(", r"\(")):
        resolve_config(dcgan.RECIPE, argv)


@pytest.mark.parametrize("values,message", [
    ({"seed": -1}, "--seed must be between 0 and 2**32 - 1, got -1"),
    ({"seed": 2**32}, "--seed must be between 0 and 2**32 - 1, got 4294967296"),
    ({"learning_rate": float("nan")}, "--learning-rate must be a finite number, got nan"),
    ({"learning_rate": float("inf")}, "--learning-rate must be a finite number, got inf"),
    ({"learning_rate": 0.0}, "--learning-rate must be > 0, got 0.0"),
    ({"beta_1": 1.0}, "--beta-1 must be in [0, 1), got 1.0"),
    ({"batch_size": 0}, "--batch-size must be >= 1, got 0"),
    ({"model": {"gp_weight": float("-inf")}}, "--gp-weight must be a finite number, got -inf"),
    ({"scale_range": (0.5, float("nan"))}, "--scale-range must be a finite number, got 0.5,nan"),
])
def test_values_are_range_checked(values, message):
    with pytest.raises(KzooError) as e:
        check_values(values)
    assert str(e.value) == message
    check_values({"seed": 0, "learning_rate": 1e-4, "steps_per_epoch": None, "data": "builtin:digits",
                  "model": {"gp_weight": 10.0}, "scale_range": (0.5, 2.0), "width": 8})


def test_resume_class_comes_from_the_field_metadata():
    from kzoo.recipes.img2img import Img2ImgConfig

    assert resume_class(Img2ImgConfig, "epochs") == SCHEDULE  # the subclass only changes the default
    assert resume_class(TrainConfig, "eval_samples") == SCHEDULE
    assert resume_class(TrainConfig, "image_size") == ARCHITECTURE
    assert resume_class(Img2ImgConfig, "batch_size") == FIXED and resume_class(Img2ImgConfig, "learning_rate") == FIXED


def test_what_a_run_evaluates_or_samples_may_change_on_resume():
    """Evaluation and sample-grid options (eval_*, sample_*) of every recipe are schedule options."""
    from kzoo.recipes.registry import get_recipe, list_recipes

    checked = 0
    for recipe in map(get_recipe, list_recipes()):
        for field in dataclasses.fields(recipe.config_cls):
            if field.name.startswith(("eval_", "sample_")):
                assert resume_class(recipe.config_cls, field.name) == SCHEDULE, (recipe.name, field.name)
                checked += 1
    assert checked >= 8  # DDPM's samplers, SRGAN's eval size, every recipe's eval_samples


def _recorded_run(tmp_path, argv):
    cfg, _, _, _ = resolve_config(dcgan.RECIPE, ["--preset", "quick", *argv])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": dataclasses.asdict(cfg)}))
    return run


@pytest.mark.parametrize("argv,message", [
    (["--width", "32"], "--width 32 differs from the run's 8: architecture flags cannot change on resume"),
    (["--latent-dim", "16"], "--latent-dim 16 differs from the run's 8: architecture flags"),
    (["--image-size", "32"], "--image-size 32 differs from the run's 16: architecture flags"),
    (["--mixed-precision"], "--mixed-precision true differs from the run's false: architecture flags"),
    (["--batch-size", "16"], "--batch-size 16 differs from the run's 8: the data and training flags cannot "
                             "change on resume (only --epochs, --eval-samples, --steps-per-epoch can)"),
    (["--data", "builtin:faces"], "--data builtin:faces differs from the run's builtin:digits"),
    (["--seed", "3"], "--seed 3 differs from the run's 0"),
    (["--learning-rate", "0.001"], "--learning-rate 0.001 differs from the run's 0.0002"),
    (["--preset", "paper"], "--preset paper differs from the run's quick"),
])
def test_resume_refuses_flags_that_change_the_run(tmp_path, argv, message):
    run = _recorded_run(tmp_path, ["--image-size", "16", "--width", "8", "--latent-dim", "8", "--batch-size", "8"])
    before = (run / "config.json").read_text()
    with pytest.raises(KzooError) as e:
        resolve_config(dcgan.RECIPE, ["--resume", "--out", str(run), *argv])
    assert str(e.value).startswith(message)
    assert (run / "config.json").read_text() == before


def test_resume_takes_schedule_flags_and_unchanged_values(tmp_path):
    run = _recorded_run(tmp_path, ["--width", "8", "--epochs", "2"])
    cfg, _, resume, _ = resolve_config(dcgan.RECIPE, [
        "--resume", "--out", str(run), "--epochs", "5", "--steps-per-epoch", "3", "--eval-samples", "0",
        "--width", "8", "--preset", "quick"])
    assert resume and (cfg.epochs, cfg.steps_per_epoch, cfg.eval_samples, cfg.model["width"]) == (5, 3, 0, 8)


@pytest.mark.parametrize("text,message", [("{", "is unreadable"), ("[]", 'holds no "config" table'),
                                          ('{"config": 3}', 'holds no "config" table')])
def test_resume_of_a_broken_config_json(tmp_path, text, message):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(KzooError, match=message):
        resolve_config(dcgan.RECIPE, ["--resume", "--out", str(tmp_path)])


REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
VARIANTS = sorted(p for p in (REPO / "recipes").glob("*.toml") if p.name != "hub.toml")


def test_recipe_variants_exist_for_real_datasets():
    names = {p.stem for p in VARIANTS}
    assert {"dcgan-cifar10", "ddpm-cifar10", "vae-celeb_a", "pix2pix-facades", "cyclegan-horse2zebra",
            "srgan-div2k"} <= names


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: p.stem)
def test_every_recipe_variant_resolves(path):
    """Each file of recipes/ names its recipe and resolves (nothing is downloaded)."""
    import tomllib

    from kzoo.recipes.registry import get_recipe

    table = tomllib.loads(path.read_text())
    recipe = get_recipe(table["recipe"])
    assert path.stem.split("-")[0] in (recipe.name, "srresnet")
    cfg, _, _, _ = resolve_config(recipe, ["--preset", str(path)])
    assert cfg.data == table["data"] and cfg.preset == str(path)
    assert cfg.data.startswith("tfds:") or not cfg.data.startswith(("builtin:", "/"))  # real data
    assert all(cfg.model[k] == v or list(cfg.model[k]) == v for k, v in table.get("model", {}).items())


def test_exact_junyanz_implies_the_authors_upsampling_unless_a_flag_says_otherwise():
    """The quick presets decode with resize-convs; `--exact junyanz` means the authors'
    transposed convs (and for CycleGAN no input skip), an explicit flag still wins."""
    cfg, _, _, _ = resolve_config(pix2pix.RECIPE, ["--exact", "junyanz"], has_gpu=False)
    assert (cfg.model["exact"], cfg.model["upsample"]) == ("junyanz", "transpose")
    cfg, _, _, _ = resolve_config(pix2pix.RECIPE, ["--preset", "quick"], has_gpu=False)
    assert cfg.model["upsample"] == "resize"
    cfg, _, _, _ = resolve_config(pix2pix.RECIPE, ["--exact", "junyanz", "--upsample", "resize"],
                                  has_gpu=False)
    assert cfg.model["upsample"] == "resize"  # the model then names the contradiction
    cfg, _, _, _ = resolve_config(cyclegan.RECIPE, ["--preset", "quick", "--exact", "junyanz"])
    assert (cfg.model["upsample"], cfg.model["input_skip"]) == ("transpose", False)


def test_init_from_brings_the_presets_model_options(tmp_path, monkeypatch):
    """`--init-from PRESET`: its model's recorded options replace the recipe preset's,
    flags still win, and a note lists what changed."""
    import numpy as np

    from kzoo.hub.preset import build_from_models
    from kzoo.models.pix2pix import Pix2Pix

    monkeypatch.setenv("KZOO_HOME", str(tmp_path / "home"))
    model = Pix2Pix(image_size=32, input_channels=3, output_channels=3, width=2, levels=5,
                    n_layers=2, exact="junyanz")
    build_from_models(tmp_path / "preset", full=model, inference=model.generator,
                      meta={"name": "tiny-junyanz", "version": "1"}, readme_text="# tiny\n",
                      sample=np.zeros((8, 8, 3), np.uint8))
    cfg, _, _, notes = resolve_config(pix2pix.RECIPE, ["--init-from", str(tmp_path / "preset"),
                                                       "--n-layers", "1"], has_gpu=False)
    assert cfg.image_size == 32 and cfg.preset == "quick"
    m = cfg.model
    assert (m["width"], m["levels"], m["exact"], m["upsample"], m["color"], m["n_layers"]) == \
        (2, 5, "junyanz", "transpose", "rgb", 1)
    assert any(n.startswith(f"--init-from {tmp_path / 'preset'}: its ") and "--width 2" in n
               and "--n-layers" not in n for n in notes)
