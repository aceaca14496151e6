"""FLOP counts: of a traced TensorFlow graph, of one inference call, and of a training step.

`graph_flops` counts what TF's flops registry knows in a graph (convolutions, matmuls and
their gradients, element-wise ops); `forward_flops` applies it to the inference graph of a
network (`training=False`, one call at the given input shapes) -- the work an exported
model does. `train_step_flops` is the analytic count of a training step from the forward
counts of its networks: a differentiated pass costs about 3x its forward pass (the
backward pass computes the gradient with respect to the activations and with respect to
the weights, each about as costly as the forward pass; Kaplan et al. 2020, Sec. 2.1,
"C = 6N" per token against 2N for the forward pass); a pass that is not differentiated
(e.g. the generator's forward in a discriminator update) costs 1x. `step_passes` finds
the passes of a step by tracing it: every outermost call of one of the model's networks,
at the shapes of that call, differentiated when a GradientTape records it. The 3x is an
estimate: a pass differentiated only with respect to its inputs (the discriminator in
the generator's loss, a frozen feature network) costs nearer 2x, and a gradient of a
gradient (WGAN-GP's penalty) more than 3x; the loss arithmetic outside the networks is
not counted.
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
    >>> import keras, numpy as np
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False)])
    >>> forward_flops(net, np.zeros((2, 4), "float32"))  # 2 * batch * in * out
    48
    """
    import keras
    import tensorflow as tf

    inputs = keras.tree.map_structure(tf.convert_to_tensor, inputs)
    fn = tf.function(lambda x: network(x, training=False))
    return graph_flops(fn.get_concrete_function(inputs))


def _recording():
    """Whether a GradientTape records the ops run now (TF has no public query for it)."""
    from tensorflow.python import pywrap_tfe

    return not pywrap_tfe.TFE_Py_TapeSetIsEmpty() and not pywrap_tfe.TFE_Py_TapeSetIsStopped()


def step_passes(step, batch, networks):
    """The network passes of one training step, found by tracing it.

    Args:
        step: the step as a Python function of the batch (e.g. `model.train_step`).
        batch: a batch (tensors) at the size the step runs at.
        networks: the `keras.Model`s whose calls count; a call inside another counted
            call is part of that one.

    Returns:
        A list of `(network, args, differentiated)`, one per call in the order the step
        makes them: `args` the call's positional inputs as `tf.TensorSpec`s.

    Example:
    >>> import keras, tensorflow as tf
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> def step(x):
    ...     y = net(x)
    ...     with tf.GradientTape() as tape:
    ...         loss = tf.reduce_sum(net(x))
    ...     return tape.gradient(loss, net.trainable_variables)
    >>> [(n is net, a[0].shape.as_list(), d) for n, a, d in step_passes(step, tf.zeros((2, 4)), [net])]
    [(True, [2, 4], False), (True, [2, 4], True)]
    """
    import keras
    import tensorflow as tf

    counted = {id(n) for n in networks}
    passes, depth = [], [0]
    original = keras.Model.__call__

    def spy(self, *args, **kwargs):
        outer = id(self) in counted and depth[0] == 0
        if outer:
            specs = keras.tree.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), args)
            passes.append((self, specs, _recording()))
        depth[0] += outer
        try:
            return original(self, *args, **kwargs)
        finally:
            depth[0] -= outer

    keras.Model.__call__ = spy
    try:
        tf.function(step).get_concrete_function(batch)  # a fresh trace: only the graph is built
    finally:
        keras.Model.__call__ = original
    return passes


def analytic_step_flops(step, batch, networks):
    """`train_step_flops` of the passes `step_passes` finds (forward FLOPs of each pass
    from `graph_flops` of the network's inference call at the pass's shapes).

    Example:
    >>> import keras, tensorflow as tf
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False)])
    >>> def step(x):
    ...     with tf.GradientTape() as tape:
    ...         loss = tf.reduce_sum(net(x))
    ...     return tape.gradient(loss, net.trainable_variables)
    >>> analytic_step_flops(step, tf.zeros((2, 4)), [net])  # 3 * (2 * 2 * 4 * 3)
    144
    """
    import keras
    import tensorflow as tf

    cache = {}

    def forward(network, specs):
        key = (id(network), repr(specs))
        if key not in cache:
            fn = tf.function(lambda *a: network(*a, training=False))
            cache[key] = graph_flops(fn.get_concrete_function(*keras.tree.map_structure(
                lambda s: tf.zeros(s.shape, s.dtype), specs)))
        return cache[key]

    return train_step_flops([(forward(n, a), d) for n, a, d in step_passes(step, batch, networks)])


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
