"""The tutorial row runs a notebook's own statements, chosen by the names they define."""

import json

import pytest

from benchmarks import report, tutorial

# A notebook laid out like tensorflow/docs' pix2pix.ipynb, at 32x32: imports with plotting
# ones, a download cell, magics, a plotting statement beside a definition, and the cells
# that define the names the benchmark runs. Only the latter (and plain imports) may run.
CELLS = [
    ("import tensorflow as tf\nimport os\nimport time\nfrom matplotlib import pyplot as plt\n"
    "from IPython import display"),
    "path_to_zip = tf.keras.utils.get_file('x.tar.gz', origin='http://127.0.0.1:9/x.tar.gz')",
    "%load_ext tensorboard",
    "OUTPUT_CHANNELS = 3",
    "def downsample(filters, size):\n  return tf.keras.layers.Conv2D(filters, size, strides=2, padding='same')",
    "def upsample(filters, size):\n  return tf.keras.layers.Conv2DTranspose(filters, size, strides=2, padding='same')",
    ("def Generator():\n  inputs = tf.keras.layers.Input(shape=[32, 32, 3])\n"
    "  x = upsample(OUTPUT_CHANNELS, 4)(downsample(4, 4)(inputs))\n"
    "  return tf.keras.Model(inputs=inputs, outputs=tf.keras.layers.Activation('tanh')(x))"),
    "generator = Generator()\ntf.keras.utils.plot_model(generator, show_shapes=True, dpi=64)",
    "LAMBDA = 100\nloss_object = tf.keras.losses.BinaryCrossentropy(from_logits=True)",
    ("def generator_loss(fake_logits, gen_output, target):\n"
    "  gan = loss_object(tf.ones_like(fake_logits), fake_logits)\n"
    "  l1 = tf.reduce_mean(tf.abs(target - gen_output))\n  return gan + LAMBDA * l1, gan, l1"),
    ("def Discriminator():\n  inp = tf.keras.layers.Input(shape=[32, 32, 3])\n"
    "  tar = tf.keras.layers.Input(shape=[32, 32, 3])\n"
    "  x = downsample(1, 4)(tf.keras.layers.Concatenate()([inp, tar]))\n"
    "  return tf.keras.Model(inputs=[inp, tar], outputs=x)"),
    "discriminator = Discriminator()\nplt.figure()",
    ("def discriminator_loss(real, fake):\n"
    "  return loss_object(tf.ones_like(real), real) + loss_object(tf.zeros_like(fake), fake)"),
    ("generator_optimizer = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)\n"
    "discriminator_optimizer = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)"),
    "log_dir = 'logs/'\nsummary_writer = tf.summary.create_file_writer(log_dir + 'fit')",
    ("@tf.function\ndef train_step(input_image, target, step):\n"
    "  with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:\n"
    "    gen_output = generator(input_image, training=True)\n"
    "    real = discriminator([input_image, target], training=True)\n"
    "    fake = discriminator([input_image, gen_output], training=True)\n"
    "    gen_loss, _, _ = generator_loss(fake, gen_output, target)\n"
    "    disc_loss = discriminator_loss(real, fake)\n"
    "  g = gen_tape.gradient(gen_loss, generator.trainable_variables)\n"
    "  d = disc_tape.gradient(disc_loss, discriminator.trainable_variables)\n"
    "  generator_optimizer.apply_gradients(zip(g, generator.trainable_variables))\n"
    "  discriminator_optimizer.apply_gradients(zip(d, discriminator.trainable_variables))\n"
    "  with summary_writer.as_default():\n"
    "    tf.summary.scalar('gen_total_loss', gen_loss, step=step)"),
    "!ls {log_dir}",
]


def _notebook(path, cells):
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["# pix2pix"]}] + [
        {"cell_type": "code", "source": c.splitlines(keepends=True)} for c in cells]}))
    return path


def test_statements_are_chosen_by_the_names_they_define(tmp_path):
    statements = [s for _, s in tutorial.tutorial_statements(_notebook(tmp_path / "nb.ipynb", CELLS))]
    text = "\n".join(statements)
    assert "@tf.function\ndef train_step" in text  # the decorator comes with its function
    assert "generator = Generator()" in statements and "discriminator = Discriminator()" in statements
    for skipped in ("plot_model", "plt.figure", "get_file", "matplotlib", "IPython", "load_ext", "!ls"):
        assert skipped not in text
    assert "import os" in statements


def test_a_notebook_without_a_name_is_refused(tmp_path):
    path = _notebook(tmp_path / "nb.ipynb", [c for c in CELLS if "train_step" not in c])
    with pytest.raises(ValueError, match="no statement defines train_step"):
        tutorial.tutorial_statements(path)
    with pytest.raises(ValueError, match="not a readable Jupyter notebook"):
        tutorial.tutorial_statements(tmp_path / "missing.ipynb")


def test_tutorial_row_at_a_tiny_size_and_its_report(tmp_path):
    path = _notebook(tmp_path / "nb.ipynb", CELLS)
    row = tutorial.measure(path, steps=2, rounds=1, warmup=1, image_size=32, width=4, flops=False,
                           log=lambda m: None)
    assert row["ratio_to_tutorial"] > 0 and row["cpu_ratio_to_tutorial"] > 0 and row["kzoo_fit_cpu_s"] > 0 and row["tutorial_cpu_s"] > 0
    flat = {"command": "python -m benchmarks --suites tutorial", "date": "2026-12-07",
            "machine": {"cpu": "c", "cores": 2, "gpus": [], "tensorflow": "t", "keras": "k", "numpy": "n"},
            "tutorial": [row]}
    text = report.render(report.as_stored("r", flat))
    assert "## Training against the TF pix2pix tutorial's own cells (run r)" in text
    assert "| 32 | 4 | 1 |" in text and "1 x 2" in text


def test_the_suite_needs_the_notebook(capsys):
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--suites", "tutorial"])
    assert exit_info.value.code == 2
    assert "needs --tutorial PATH" in capsys.readouterr().err
