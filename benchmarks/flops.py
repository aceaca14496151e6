"""FLOPs of a traced TensorFlow function, counted from its graph (TF's flops registry)."""

from __future__ import annotations


def graph_flops(concrete_function):
    """Total float operations of one call of `concrete_function` (convs, matmuls, their gradients)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    opts = option_builder.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return int(model_analyzer.profile(concrete_function.graph, options=opts).total_float_ops)
