"""The one training base of the zoo: `TrainingModel`, and the pieces of a custom `train_step`.

Every trainable family (the GANs through `kzoo.models.adversarial.AdversarialModel`,
`VAE`, `DDPM`, and U-Net / DeepLabV3+ through `kzoo.models.segmentation`) derives
from `TrainingModel` and keeps only its loss terms and steps. The base owns:

- **randomness**: a model-owned `ReplicaSeedGenerator` (`self.seed_generator`, with
  the `normal` / `uniform` / `randint` helpers), offset per tf.distribute replica,
  its state saved with the weights (Keras does not save it), so a run resumed from
  a checkpoint continues the same noise stream; no Python or NumPy randomness
  inside a step, so steps trace under `jit_compile=True`.
- **trackers**: one `keras.metrics.Mean` per name in `loss_names`; `track(logs)`
  updates them and returns every metric's result, made reducible under
  MultiWorkerMirroredStrategy (`per_replica_logs`).
- **optimizers**: one or several, named by `optimizer_names`
  (`compile(g_optimizer=..., d_optimizer=...)` for a GAN, `compile(optimizer=...)`
  otherwise), each wrapped in `LossScaleOptimizer` under `mixed_float16` and built
  on its own variables at compile time, so checkpoints restore exactly; saved and
  restored by `get_compile_config` / `compile_from_config`.
- **updates**: `minimize(optimizer, variables, loss_fn)`, and for a forward pass
  shared by two updates `vjp` + `minimize_through`. A loss term is a per-replica
  mean; it is divided by the number of tf.distribute replicas before
  differentiating (the optimizer sums gradients over replicas, so the update
  equals that of the global-batch mean) and scaled with `optimizer.scale_loss`
  (loss scaling under `mixed_float16`, identity otherwise).
- **backends**: the only backend-specific code is three differentiation
  primitives (`value_and_grad`, `value_and_input_grad`, `vjp`), implemented for
  TensorFlow (GradientTape) and JAX (`jax.value_and_grad` / `jax.vjp` over a
  `StepState`), and on JAX the stateless `train_step(state, data)` Keras calls:
  `TrainingModel` wraps every subclass's `train_step(data)` / `test_step(data)`
  so that it runs on the explicit trainable, non-trainable (batch-norm
  statistics, seed generators), optimizer (all of them) and metric state.
  Models never touch a backend API.

Also here: `unpack` and `split_batch` for batches, `random_images` for the
`sample_batch(batch_size, rng)` every family declares (a random training batch
of the right structure, which the contract tests run over the registry), and
`steps_per_epoch`.
"""

from __future__ import annotations

import contextlib
import functools

import keras
import numpy as np
from keras import ops

from kzoo.errors import KzooError


# --- the backend seam ----------------------------------------------------------------
#
# Three differentiation primitives are all a step needs; each backend implements them.
# TensorFlow records a GradientTape. JAX is functional: a step runs inside a
# `StepState` (a `keras.StatelessScope` holding the value of every model, optimizer,
# metric and seed variable), and a primitive differentiates a function of the values
# of some variables with `jax.value_and_grad` / `jax.vjp`, running it in a child
# scope that maps those variables to the traced values; the child's other updates
# (batch-norm statistics, seed state) flow back into the step's state as auxiliary
# outputs. Optimizer updates, metric updates and seed draws are ordinary
# `Variable.assign`s, which the scope records, so model code is the same on both.

def _tensorflow_value_and_grad(fn, variables):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value, aux = fn()
    return (value, aux), tape.gradient(value, variables,
                                       unconnected_gradients=tf.UnconnectedGradients.ZERO)


def _tensorflow_value_and_input_grad(fn, inputs):
    import tensorflow as tf

    inputs = keras.tree.map_structure(tf.convert_to_tensor, inputs)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        value, aux = fn(inputs)
    return (value, aux), tape.gradient(value, inputs,
                                       unconnected_gradients=tf.UnconnectedGradients.ZERO)


def _tensorflow_vjp(fn, variables):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        outputs = fn()

    def pullback(cotangents):
        return tape.gradient(keras.tree.flatten(outputs), variables,
                             output_gradients=keras.tree.flatten(cotangents),
                             unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return outputs, pullback


class StepState(keras.StatelessScope):
    """The values of every variable a JAX step reads or writes (a `keras.StatelessScope`).

    `TrainingModel` opens one around its `train_step`/`test_step` on JAX, mapping
    the trainable, non-trainable (incl. seed generators), optimizer and metric
    variables to the values Keras passes in; assigns are recorded, and the new
    values are read back at the end. `child` opens a nested scope that sees these
    values with some variables mapped to traced ones (what `jax.grad` differentiates)
    and records which variables it updated.
    """

    def __init__(self, pairs):
        super().__init__()
        self.refs = {id(k): k for k, _ in pairs}
        self.state_mapping = {id(k): v for k, v in pairs}
        self.updated = set()

    def add_update(self, update):
        variable, value = update
        self.refs[id(variable)] = variable
        self.updated.add(id(variable))
        super().add_update(update)

    def value(self, variable):
        """The variable's value in this scope (its own value if the scope does not map it)."""
        value = self.state_mapping.get(id(variable))
        return variable.value if value is None else value

    def child(self, variables, values):
        scope = StepState([(self.refs[i], v) for i, v in self.state_mapping.items()])
        for var, value in zip(variables, values):
            scope.refs[id(var)] = var
            scope.state_mapping[id(var)] = value
        return scope

    def updates(self):
        """The values this scope assigned, by variable id (to merge into the parent)."""
        return {i: self.state_mapping[i] for i in self.updated}

    def merge(self, updates):
        for i, value in updates.items():
            self.add_update((self.refs[i], value))


@contextlib.contextmanager
def _jax_state():
    """The step's `StepState`; outside a step, a root one whose updates are applied at the end."""
    from keras.src.backend.common.stateless_scope import get_stateless_scope

    scope = get_stateless_scope()
    if isinstance(scope, StepState):
        yield scope
        return
    if scope is not None:
        raise KzooError("kzoo's gradients cannot run inside another keras.StatelessScope")
    with StepState([]) as root:
        yield root
    for i, value in root.updates().items():
        root.refs[i].assign(value)


def _jax_value_and_grad(fn, variables):
    import jax

    with _jax_state() as state:
        def f(values):
            with state.child(variables, values) as scope:
                value, aux = fn()
            return value, (aux, scope.updates())

        (value, (aux, updates)), grads = jax.value_and_grad(f, has_aux=True)(
            [state.value(v) for v in variables])
        state.merge({i: u for i, u in updates.items() if i not in {id(v) for v in variables}})
    return (value, aux), grads


def _jax_value_and_input_grad(fn, inputs):
    import jax

    with _jax_state() as state:
        def f(x):
            with state.child((), ()) as scope:
                value, aux = fn(x)
            return value, (aux, scope.updates())

        (value, (aux, updates)), grads = jax.value_and_grad(f, has_aux=True)(inputs)
        state.merge(updates)
    return (value, aux), grads


def _jax_vjp(fn, variables):
    import jax

    with _jax_state() as state:
        def f(values):
            with state.child(variables, values) as scope:
                outputs = fn()
            return outputs, scope.updates()

        outputs, pull, updates = jax.vjp(f, [state.value(v) for v in variables], has_aux=True)
        state.merge({i: u for i, u in updates.items() if i not in {id(v) for v in variables}})
    return outputs, lambda cotangents: pull(cotangents)[0]


BACKENDS = {
    "tensorflow": (_tensorflow_value_and_grad, _tensorflow_value_and_input_grad, _tensorflow_vjp),
    "jax": (_jax_value_and_grad, _jax_value_and_input_grad, _jax_vjp),
}


def _backend(index):
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise KzooError(f"kzoo trains with the {' or '.join(BACKENDS)} backend, "
                        f"not {backend!r} (set KERAS_BACKEND)")
    return BACKENDS[backend][index]


def value_and_grad(fn, variables):
    """`((value, aux), grads)` of `fn() -> (value, aux)` with respect to Keras `variables`.

    Gradients of variables `value` does not depend on are zeros. On JAX, call it
    inside a `TrainingModel` step (it differentiates the step's state).

    Example:
    >>> w = keras.Variable(3.0)
    >>> (value, aux), grads = value_and_grad(lambda: (w * w, "aux"), [w])
    >>> float(value), aux, float(grads[0])
    (9.0, 'aux', 6.0)
    """
    return _backend(0)(fn, variables)


def scale_for_replicas(loss):
    """Divide by the number of replicas in sync (tf.distribute), else identity."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        n = tf.distribute.get_strategy().num_replicas_in_sync
        if n > 1:
            return loss / float(n)
    return loss


def value_and_input_grad(fn, inputs):
    """`((value, aux), grads)` of `fn(inputs) -> (value, aux)` with respect to the tensors `inputs`.

    `inputs` is a tensor or a nested structure of them; `grads` has its structure.

    Example:
    >>> (value, _), grad = value_and_input_grad(lambda x: (keras.ops.sum(x * x), None),
    ...                                         keras.ops.ones((2,)))
    >>> float(value), keras.ops.convert_to_numpy(grad).tolist()
    (2.0, [2.0, 2.0])
    """
    return _backend(1)(fn, inputs)


def vjp(fn, variables):
    """`(outputs, pullback)`: run `fn()` once, keeping what backpropagation needs.

    `pullback(cotangents)` (cotangents structured as `outputs`) returns the
    vector-Jacobian product: d<cotangents, outputs>/d variables, one per variable.
    A GAN step runs G's forward pass once this way, uses the outputs (detached)
    for the discriminator's update, and backpropagates the generator's loss
    through the same activations later.

    Example:
    >>> w = keras.Variable(3.0)
    >>> out, pullback = vjp(lambda: {"y": w * 2.0}, [w])
    >>> float(out["y"]), float(pullback({"y": keras.ops.ones(())})[0])
    (6.0, 2.0)
    """
    return _backend(2)(fn, variables)


def _scaled(optimizer, loss_fn):
    """`loss_fn` with its loss divided by the replicas and scaled for `mixed_float16`."""
    def scaled(*args):
        loss, logs = loss_fn(*args)
        return optimizer.scale_loss(scale_for_replicas(loss)), logs
    return scaled


def minimize(optimizer, variables, loss_fn):
    """One optimizer update on `variables`; return the logs of `loss_fn`.

    A loss term is a per-replica mean; it is divided by the number of
    tf.distribute replicas (the optimizer sums gradients over replicas) and
    scaled with `optimizer.scale_loss` before differentiating.

    Args:
        optimizer: `keras.optimizers.Optimizer`, built on `variables` or buildable.
        variables: list of trainable variables to update.
        loss_fn: callable `() -> (loss, logs)`, `loss` a per-replica mean scalar.

    Returns:
        `logs`, as `loss_fn` returned them.

    Raises:
        KzooError: the Keras backend has no implementation.

    Example:
    >>> w = keras.Variable(3.0)
    >>> logs = minimize(keras.optimizers.SGD(0.5), [w], lambda: (w * w, {"w2": w * w}))
    >>> float(logs["w2"]), float(w.numpy())
    (9.0, 0.0)
    """
    (_, logs), grads = value_and_grad(_scaled(optimizer, loss_fn), variables)
    optimizer.apply_gradients(zip(grads, variables))
    return logs


def minimize_through(optimizer, variables, pullback, outputs, loss_fn):
    """One update of `variables` from a loss of `outputs` that a `vjp` computed from them.

    The gradient of `loss_fn(outputs)` with respect to `outputs` is pulled back
    through the recorded forward pass: the forward pass is not run again.

    Args:
        optimizer: `keras.optimizers.Optimizer`.
        variables: the variables `vjp` was taken with respect to.
        pullback: from `vjp(fn, variables)`.
        outputs: `fn()`'s outputs, from the same `vjp`.
        loss_fn: callable `(outputs) -> (loss, logs)`.

    Returns:
        `logs`, as `loss_fn` returned them.
    """
    (_, logs), cotangents = value_and_input_grad(_scaled(optimizer, loss_fn), outputs)
    optimizer.apply_gradients(zip(pullback(cotangents), variables))
    return logs


# --- batches and logs -------------------------------------------------------------------

def unpack(data):
    """(inputs, targets) from a batch that is `inputs` or `(inputs, targets)`.

    Example:
    >>> unpack((1, 2)), unpack([3]), unpack(4)
    ((1, 2), (3, None), (4, None))
    """
    if isinstance(data, (tuple, list)):
        return data[0], (data[1] if len(data) > 1 else None)
    return data, None


def split_batch(data, parts):
    """Split every tensor of a (nested) batch into `parts` equal chunks along axis 0.

    Example:
    >>> [keras.ops.convert_to_numpy(c).tolist() for c in split_batch(keras.ops.arange(6), 3)]
    [[0, 1], [2, 3], [4, 5]]
    """
    if parts == 1:
        return [data]
    flat = keras.tree.flatten(data)
    chunks = [ops.split(t, parts, axis=0) for t in flat]
    return [keras.tree.pack_sequence_as(data, [c[i] for c in chunks]) for i in range(parts)]


def per_replica_logs(logs):
    """Make step logs reducible by Keras under MultiWorkerMirroredStrategy.

    Keras 3 reduces multi-worker logs with `strategy.reduce("MEAN", v, axis=0)`,
    which fails on the scalars every train_step returns; a length-1 vector reduces
    to the same scalar. Other strategies get the scalars unchanged.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
                strategy.extended._in_multi_worker_mode():
            return {k: ops.reshape(v, (1,)) for k, v in logs.items()}
    return logs


def steps_per_epoch(num_examples, batch_size, *, minibatches=1, requested=0):
    """Optimizer steps in one epoch: `requested`, or one pass over the data (at least 1).

    Args:
        num_examples: int. Examples in the training set.
        batch_size: int. Global batch size of one minibatch.
        minibatches: int. Minibatches one step consumes (a GAN's `d_steps`).
        requested: int. Steps asked for explicitly; 0 means one pass.

    Example:
    >>> steps_per_epoch(1000, 64), steps_per_epoch(1000, 64, minibatches=5), steps_per_epoch(10, 64)
    (15, 3, 1)
    >>> steps_per_epoch(1000, 64, requested=7)
    7
    """
    return requested or max(1, num_examples // (batch_size * minibatches))


def random_images(rng, batch_size, height, width, channels):
    """Random images in [-1, 1] (tanh of N(0, 1) noise): the zoo's image range, for sample batches.

    Example:
    >>> x = random_images(np.random.default_rng(0), 2, 4, 4, 3)
    >>> x.shape, x.dtype, bool(np.abs(x).max() < 1)
    ((2, 4, 4, 3), dtype('float32'), True)
    """
    rng = np.random.default_rng(rng)
    return np.tanh(rng.standard_normal((batch_size, height, width, channels))).astype("float32")


# --- randomness ---------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="kzoo")
class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A `SeedGenerator` whose seeds differ between tf.distribute replicas.

    The state is kept in sync (updated once, from the first replica); each replica
    offsets the seed it hands out by its replica id.
    """

    def next(self, ordered=True):
        seed = super().next(ordered=ordered)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            ctx = tf.distribute.get_replica_context()
            if ctx is not None and tf.distribute.get_strategy().num_replicas_in_sync > 1:
                rid = ops.cast(ctx.replica_id_in_sync_group, seed.dtype)
                seed = seed + ops.stack([rid * 7919, ops.zeros_like(rid)])
        return seed


# --- JAX: the stateless step ------------------------------------------------------------

class OptimizerGroup:
    """A model's optimizers seen as one by Keras' JAX trainer (its `optimizer_variables`).

    Keras' JAX `fit` threads `model.optimizer.variables` through the jitted step;
    with two optimizers (a GAN's) both must be in that state. The group lists
    every optimizer's variables in `optimizer_names` order and otherwise behaves
    as the first one (learning rate, iterations for callbacks).
    """

    def __init__(self, optimizers):
        self.optimizers = list(optimizers)

    @property
    def variables(self):
        return [v for opt in self.optimizers for v in opt.variables]

    @property
    def built(self):
        return all(opt.built for opt in self.optimizers)

    def __getattr__(self, name):
        return getattr(self.__dict__["optimizers"][0], name)


def _stateless(step, with_optimizer):
    """Wrap a `step(self, data)` so that Keras' JAX trainer can call it as `step(self, state, data)`.

    The state tuple is Keras' (trainable, non-trainable, [optimizer,] metrics)
    variable values; the step runs in a `StepState` mapping them and returns
    `(logs, new_state)`. Called with `data` only (TensorFlow, or directly), it is `step`.
    """
    if getattr(step, "_kzoo_stateless", False):
        return step

    @functools.wraps(step)
    def wrapper(self, *args):
        if len(args) == 1:
            return step(self, *args)
        state, data = args
        data = keras.tree.map_structure(lambda x: x if x is None else ops.convert_to_tensor(x), data)
        groups = [self.trainable_variables, self.non_trainable_variables]
        if with_optimizer:
            groups.append(self.optimizer.variables)
        groups.append(self.metrics_variables)
        pairs = [(v, x) for group, values in zip(groups, state) for v, x in zip(group, values)]
        with StepState(pairs) as scope:
            logs = step(self, data)
        return logs, tuple([scope.state_mapping[id(v)] for v in group] for group in groups)

    wrapper._kzoo_stateless = True
    return wrapper


# --- the base -----------------------------------------------------------------------------

class TrainingModel(keras.Model):
    """A `keras.Model` with an overridden `train_step`: seeds, trackers, optimizers, updates.

    Subclasses declare `loss_names` (each gets a `keras.metrics.Mean` tracker) and,
    with several optimizers, `optimizer_names` and `optimizer_variables(name)`;
    their `train_step` calls `self.optimize(loss_fn, name)` and returns
    `self.track(logs)`. The seed generator's state is saved with the weights
    (under `noise_seed_state`).

    Args:
        seed: int or None. Seed of the model-owned noise generator.
        **kwargs: `keras.Model` arguments (`name`, `trainable`).

    Example:
    >>> class Line(TrainingModel):
    ...     loss_names = ("loss",)
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.net = keras.layers.Dense(1)
    ...     def call(self, x):
    ...         return self.net(x)
    ...     def train_step(self, data):
    ...         x, y = unpack(data)
    ...         def loss_fn():
    ...             loss = keras.ops.mean(keras.ops.square(self(x) - y))
    ...             return loss, {"loss": loss}
    ...         return self.track(self.optimize(loss_fn))
    >>> model = Line(seed=0)
    >>> _ = model(keras.ops.zeros((1, 2)))
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1))
    >>> history = model.fit(keras.ops.ones((4, 2)), keras.ops.ones((4, 1)), verbose=0)
    >>> sorted(history.history)
    ['loss']
    """

    loss_names: tuple[str, ...] = ()
    optimizer_names: tuple[str, ...] = ("optimizer",)

    _SEED_KEY = "noise_seed_state"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # One subclass API on every backend: steps are written `train_step(self, data)`.
        if "train_step" in cls.__dict__:
            cls.train_step = _stateless(cls.__dict__["train_step"], with_optimizer=True)
        if "test_step" in cls.__dict__:
            cls.test_step = _stateless(cls.__dict__["test_step"], with_optimizer=False)

    def __init__(self, *, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed, name="noise_seed")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.loss_names}
        for name in self.optimizer_names:
            if name != "optimizer":  # keras.Model owns that one
                setattr(self, name, None)

    # --- randomness ---------------------------------------------------------------
    def normal(self, shape, dtype="float32"):
        """N(0, 1) noise from the model's seed generator."""
        return keras.random.normal(shape, dtype=dtype, seed=self.seed_generator)

    def uniform(self, shape, dtype="float32"):
        """U(0, 1) noise from the model's seed generator."""
        return keras.random.uniform(shape, dtype=dtype, seed=self.seed_generator)

    def randint(self, shape, minval, maxval, dtype="int32"):
        """Integers uniform in [minval, maxval) from the model's seed generator."""
        return keras.random.randint(shape, minval, maxval, dtype=dtype, seed=self.seed_generator)

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_KEY] = keras.ops.convert_to_numpy(self.seed_generator.state.value)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_KEY in keys:
            self.seed_generator.state.assign(store[self._SEED_KEY])
        super().load_own_variables({k: store[k] for k in keys if k != self._SEED_KEY})

    # --- trackers -------------------------------------------------------------------
    @property
    def metrics(self):
        return list(self.trackers.values())

    def track(self, logs):
        """Update the trackers with `logs`; return every metric's result (per replica).

        Names in `logs` without a tracker (e.g. intermediate tensors) are skipped.
        """
        for name, value in logs.items():
            if name in self.trackers:
                self.trackers[name].update_state(value)
        return per_replica_logs({m.name: m.result() for m in self.metrics})

    # --- optimizers -------------------------------------------------------------------
    def optimizer_variables(self, name):
        """The variables optimizer `name` updates (default: all trainable variables)."""
        return self.trainable_variables

    def default_optimizer(self, name):
        """The optimizer `compile` uses when `name` is not given (Keras' default: RMSprop)."""
        if len(self.optimizer_names) > 1:
            raise TypeError(f"{type(self).__name__}.compile needs "
                            f"{', '.join(self.optimizer_names)}; {name} is missing")
        return "rmsprop"

    def compile(self, optimizer=None, *, jit_compile=False, **kwargs):
        """Compile with one optimizer per name in `optimizer_names`.

        Args:
            optimizer: optimizer or its name (models with one optimizer).
            jit_compile: bool. Compile the step with XLA (TensorFlow). On JAX the
                step is always compiled (`jax.jit`) unless `run_eagerly=True`.
            **kwargs: the named optimizers (`g_optimizer=`, `d_optimizer=`), then
                other `keras.Model.compile` arguments.

        Under a `mixed_float16` dtype policy every optimizer is wrapped in
        `keras.optimizers.LossScaleOptimizer`. Each one is built on its
        `optimizer_variables` now, so a checkpoint restores its state exactly.
        """
        given = {name: kwargs.pop(name, None) for name in self.optimizer_names}
        if optimizer is not None:
            if self.optimizer_names != ("optimizer",):
                raise TypeError(f"{type(self).__name__}.compile takes "
                                f"{', '.join(self.optimizer_names)}, not optimizer")
            given["optimizer"] = optimizer
        optimizers = {}
        for name, opt in given.items():
            opt = keras.optimizers.get(opt if opt is not None else self.default_optimizer(name))
            if (keras.mixed_precision.global_policy().name == "mixed_float16"
                    and not isinstance(opt, keras.optimizers.LossScaleOptimizer)):
                opt = keras.optimizers.LossScaleOptimizer(opt)
            optimizers[name] = opt
        if len({id(o) for o in optimizers.values()}) < len(optimizers):
            raise ValueError(f"{', '.join(self.optimizer_names)} need separate optimizers")
        jax = keras.backend.backend() == "jax"
        super().compile(optimizer=optimizers[self.optimizer_names[0]],
                        jit_compile=True if jax else jit_compile, **kwargs)
        for name, opt in optimizers.items():
            setattr(self, name, opt)
            opt.build(self.optimizer_variables(name))
        if jax:
            self._requested_jit_compile = bool(jit_compile)  # what the config records
            if len(optimizers) > 1:
                self.optimizer = OptimizerGroup(optimizers[n] for n in self.optimizer_names)

    def get_compile_config(self):
        if not getattr(self, "compiled", False):
            return None
        config = {name: keras.saving.serialize_keras_object(getattr(self, name))
                  for name in self.optimizer_names}
        config["jit_compile"] = bool(getattr(self, "_requested_jit_compile", self.jit_compile))
        return config

    def compile_from_config(self, config):
        optimizers = {name: keras.saving.deserialize_keras_object(config[name])
                      for name in self.optimizer_names if config.get(name) is not None}
        self.compile(jit_compile=bool(config.get("jit_compile", False)), **optimizers)

    # --- updates -----------------------------------------------------------------------
    def optimize(self, loss_fn, optimizer="optimizer"):
        """One update of the optimizer named `optimizer` on its variables; return the logs."""
        return minimize(getattr(self, optimizer), self.optimizer_variables(optimizer), loss_fn)
