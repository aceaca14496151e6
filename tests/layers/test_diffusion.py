"""kzoo.layers.diffusion: time embedding, time residual block, spatial attention."""

import keras
import numpy as np
import pytest

from kzoo.layers import SinusoidalTimeEmbedding, SpatialSelfAttention, TimeResidualBlock


def _roundtrip(layer):
    return type(layer).from_config(layer.get_config())


def test_time_embedding_is_the_transformer_formula():
    emb = SinusoidalTimeEmbedding(8)
    t = np.array([0, 1, 250, 999])
    out = keras.ops.convert_to_numpy(emb(t))
    freqs = np.exp(-np.log(10000.0) * np.arange(4) / 3)  # Ho et al.: log(10000) / (half - 1)
    expected = np.concatenate([np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)], axis=1)
    np.testing.assert_allclose(out, expected, atol=2e-4)
    assert len({tuple(np.round(r, 4)) for r in out}) == 4  # distinct timesteps, distinct codes
    odd = keras.ops.convert_to_numpy(SinusoidalTimeEmbedding(7)(t))
    assert odd.shape == (4, 7) and np.all(odd[:, -1] == 0)
    assert _roundtrip(emb).get_config() == emb.get_config()
    with pytest.raises(ValueError):
        SinusoidalTimeEmbedding(1)


def test_residual_block_starts_as_identity_and_uses_time():
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 8)).astype("float32")
    temb = np.ones((2, 16), "float32")
    same = TimeResidualBlock(8, groups=4)
    np.testing.assert_allclose(same([x, temb]), x, atol=1e-6)  # zero-initialised last conv
    assert same.skip is None
    wider = TimeResidualBlock(16, dropout=0.5, groups=4)
    out = wider([x, temb])
    assert out.shape == (2, 4, 4, 16) and wider.skip is not None
    np.testing.assert_allclose(out, wider.skip(x), atol=1e-6)
    # once the last conv is non-zero the time embedding changes the output
    wider.conv2.kernel.assign(np.random.default_rng(1).normal(0, 0.1, wider.conv2.kernel.shape))
    a, b = wider([x, temb]), wider([x, 2 * temb])
    assert not np.allclose(a, b)
    # dropout acts in training only
    np.testing.assert_allclose(wider([x, temb]), a)
    assert not np.allclose(wider([x, temb], training=True), a)
    assert _roundtrip(wider).get_config() == wider.get_config()


def test_attention_starts_as_identity_and_is_permutation_equivariant():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 4, 8)).astype("float32")
    attn = SpatialSelfAttention(groups=4)
    np.testing.assert_allclose(attn(x), x, atol=1e-6)  # zero-initialised output projection
    attn.proj_out.kernel.assign(rng.normal(0, 0.3, attn.proj_out.kernel.shape))
    out = keras.ops.convert_to_numpy(attn(x))
    assert not np.allclose(out, x)
    # permuting the positions permutes the output: attention has no notion of place
    perm = rng.permutation(16)
    xp = x.reshape(2, 16, 8)[:, perm].reshape(x.shape)
    outp = keras.ops.convert_to_numpy(attn(xp))
    np.testing.assert_allclose(outp.reshape(2, 16, 8), out.reshape(2, 16, 8)[:, perm], atol=1e-5)
    # every position sees every other: changing one pixel changes the output everywhere
    x2 = x.copy()
    x2[:, 0, 0] += 3.0
    delta = np.abs(keras.ops.convert_to_numpy(attn(x2)) - out)[:, 3, 3]
    assert np.all(delta > 1e-5)
    assert _roundtrip(attn).get_config() == attn.get_config()


@pytest.mark.parametrize("flip,shift", [(True, 0), (False, 0), (True, 1)])
def test_time_embedding_diffusers_options(flip, shift):
    """diffusers' get_timestep_embedding: exponent / (half - freq_shift), cos first if flipped."""
    t = np.array([0, 3, 999])
    emb = SinusoidalTimeEmbedding(8, flip_sin_to_cos=flip, freq_shift=shift)
    freqs = np.exp(-np.log(10000.0) * np.arange(4) / (4 - shift))
    waves = [np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)]
    expected = np.concatenate(waves[::-1] if flip else waves, axis=1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(emb(t)), expected, atol=2e-4)
    assert _roundtrip(emb).get_config() == emb.get_config()


def test_multi_head_attention_is_per_head_softmax():
    """heads=2: each half of the channels attends on its own, scale 1/sqrt(C / heads)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 3, 8)).astype("float32")
    attn = SpatialSelfAttention(groups=4, epsilon=1e-5, heads=2)
    attn.build(x.shape)
    for layer in (attn.q, attn.k, attn.v, attn.proj_out):
        layer.kernel.assign(rng.normal(0, 0.5, layer.kernel.shape))
    h = keras.ops.convert_to_numpy(attn.norm(x)).reshape(2, 6, 8)
    q, k, v = (h @ layer.kernel.numpy() + layer.bias.numpy() for layer in (attn.q, attn.k, attn.v))
    heads = []
    for s in (slice(0, 4), slice(4, 8)):
        logits = q[..., s] @ np.swapaxes(k[..., s], 1, 2) / 2.0
        w = np.exp(logits - logits.max(-1, keepdims=True))
        heads.append((w / w.sum(-1, keepdims=True)) @ v[..., s])
    expected = x + (np.concatenate(heads, -1) @ attn.proj_out.kernel.numpy()).reshape(x.shape)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(attn(x)), expected, atol=1e-4)
    assert attn.norm.epsilon == 1e-5 and _roundtrip(attn).get_config() == attn.get_config()
    with pytest.raises(ValueError, match="3 attention heads do not divide 8 channels"):
        SpatialSelfAttention(groups=4, heads=3)(x)


def test_residual_block_epsilon():
    block = TimeResidualBlock(8, groups=4, epsilon=1e-5)
    assert block.norm1.epsilon == block.norm2.epsilon == 1e-5
    assert _roundtrip(block).get_config()["epsilon"] == 1e-5
