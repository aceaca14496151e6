"""benchmarks/ddpm.py: sampling speed beside the quality of the same samples and its baselines."""

import numpy as np


def test_rows_score_the_samples_beside_real_and_noise_baselines():
    from benchmarks import ddpm

    rows = ddpm.measure(batch=12, sample_batch=5, samplers=(("ddim", 3),))
    (row,) = rows
    assert (row["sampler"], row["steps"], row["batch"], row["sample_batch"]) == ("ddim", 3, 12, 5)
    assert row["trained"] and row["keras_images_per_s"] > 0 and row["onnx_images_per_s"] > 0
    assert np.isfinite(row["samples_frechet_distance"]) and row["samples_inception_score"] >= 1.0
    # the baselines bracket what a model can score: held-out digits are far closer than noise
    assert row["real_frechet_distance"] < row["noise_frechet_distance"]
    assert row["real_inception_score"] > row["noise_inception_score"]
