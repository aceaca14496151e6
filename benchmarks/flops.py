"""FLOP counts: of a traced TensorFlow graph, of one inference call, and of a training step.

`graph_flops` counts what TF's flops registry knows in a graph (convolutions, matmuls and
their gradients, element-wise ops); `forward_flops` applies it to the inference graph of a
network (`training=False`, one call at the given input shapes) -- the work an exported
model does. `train_step_flops` is the analytic count of a training step from the forward
counts of its networks: a differentiated pass costs about 3x its forward pass (the
backward pass computes the gradient with respect to the activations and with respect to
the weights, each about as costly as the forward pass; Kaplan et al. 2020, Sec. 2.1,
"C = 6N" per token against 2N for the forward pass); a pass that is not differentiated
(e.g. the generator's forward in a discriminator update) costs 1x.
"""

from __future__ import annotations


def graph_flops(concrete_function):
    """Total float operations of one call of `concrete_function` (convs, matmuls, their gradients)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    opts = option_builder.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return int(model_analyzer.profile(concrete_function.graph, options=opts).total_float_ops)


def forward_flops(network, inputs):
    """Float operations of one inference call `network(inputs, training=False)`.

    Args:
        network: a `keras.Model`.
        inputs: its inputs (tensors or arrays, in the structure it is called with); the
            graph is traced at their shapes.

    Example:
    >>> import keras
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False)])
    >>> forward_flops(net, [[0.0] * 4] * 2)  # 2 * batch * in * out
    48
    """
    import keras
    import tensorflow as tf

    inputs = keras.tree.map_structure(tf.convert_to_tensor, inputs)
    fn = tf.function(lambda x: network(x, training=False))
    return graph_flops(fn.get_concrete_function(inputs))


def train_step_flops(passes):
    """Analytic float operations of one training step (see module docstring).

    Args:
        passes: iterable of `(forward_flops, differentiated)`: one entry per network pass
            of the step, at the step's batch.

    Example:
    >>> train_step_flops([(10, True), (4, False)])  # a differentiated pass and a plain one
    34
    """
    return sum(3 * f if diff else f for f, diff in passes)
