"""The reference loops of benchmarks/train.py run at a tiny size, and CycleGAN's matches kzoo's step."""

import keras
import numpy as np
import tensorflow as tf

from benchmarks import train

TINY_CYCLEGAN = {"image_size": 16, "width": 4, "num_blocks": 1, "n_layers": 2, "pool_size": 4}


def test_reference_rows_at_a_tiny_size():
    rows = train.run_reference_loops(["pix2pix"], rounds=1, steps=1, warmup=1,
                                     sizes={"image_size": 16, "width": 4, "n_layers": 2})
    (row,) = rows
    assert "error" not in row, row
    assert row["reference"] == "pix2pix_tutorial_step" and row["ratio_to_reference"] > 0
    assert row["kzoo_step_gflop"] > 0 and row["reference_step_gflop"] > 0


def _cyclegan():
    from kzoo.models.cyclegan import CycleGAN

    keras.utils.set_random_seed(0)
    model = CycleGAN(**TINY_CYCLEGAN, seed=0)
    model.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
    return model


def test_kzoo_cyclegan_step_is_the_authors_loop():
    """One shared forward pass, G update, then D on pooled detached fakes: the same new weights."""
    ours, theirs = _cyclegan(), _cyclegan()
    theirs.set_weights(ours.get_weights())
    batch = tf.nest.map_structure(tf.convert_to_tensor, ours.sample_batch(2, rng=0))
    tf.function(ours.train_step)(batch)
    tf.function(train.cyclegan_authors_step(theirs))(batch)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_hand_written_step_is_kzoos_step_for_cyclegan():
    """The train rows' baseline loop (`_reference_step`) takes a model whose fakes are a dict
    (CycleGAN's four translations) and makes the same update as kzoo's train_step."""
    ours, theirs = _cyclegan(), _cyclegan()
    theirs.set_weights(ours.get_weights())
    batch = tf.nest.map_structure(tf.convert_to_tensor, ours.sample_batch(2, rng=0))
    tf.function(ours.train_step)(batch)
    train._reference_step(theirs, jit=False)(batch)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
