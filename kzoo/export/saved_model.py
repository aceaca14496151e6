"""SavedModel for TF Serving, written with `keras.export.ExportArchive`.

`serving_default` takes the endpoint's inputs by name (`z`, `label`, `image`, ...)
and returns a dict of named outputs, with a dynamic batch dimension (and dynamic
height/width where the functional model has them). Keras' plain `model.export`
would number the outputs (`output_0`); a named dict is what REST and gRPC
clients read.

With `image_signature=True` a second signature, `serving_images`, takes every
image input as a batch of encoded images (PNG/JPEG bytes, `<name>_bytes`) and
returns every image output as PNG bytes (`<name>_png_bytes`: TF Serving REST base64-encodes
outputs named `*_bytes`), so that clients need no
pre- or post-processing. Randomness never lives in the graph: latents are inputs.
"""

from __future__ import annotations

from kzoo.export.spec import call

SERVING_DEFAULT = "serving_default"
SERVING_IMAGES = "serving_images"


def tensor_specs(spec):
    import tensorflow as tf

    return [tf.TensorSpec(e["shape"], e["dtype"], name=e["name"]) for e in spec["inputs"]]


def serving_fn(part, spec):
    """`fn(*inputs) -> {output name: tensor}`, inputs in the order of `spec["inputs"]`."""
    names = [e["name"] for e in spec["inputs"]]

    def serve(*args):
        return call(part, dict(zip(names, args)))

    return serve


def _image_fn(part, spec):
    """The encoded-image signature: bytes in, PNG bytes out (see module docstring)."""
    import tensorflow as tf

    serve = serving_fn(part, spec)
    inputs = spec["inputs"]
    outputs = {e["name"]: e for e in spec["outputs"]}

    def to_float(data, e):
        lo, hi = e["range"]
        channels = e["shape"][-1]

        def decode(b):
            img = tf.io.decode_image(b, channels=channels, expand_animations=False)
            if None not in e["shape"][1:3]:
                img = tf.ensure_shape(img, e["shape"][1:])
            return img

        imgs = tf.map_fn(decode, data, fn_output_signature=tf.TensorSpec(e["shape"][1:], tf.uint8))
        return lo + (hi - lo) * tf.cast(imgs, tf.float32) / 255.0

    def to_png(x, e):
        lo, hi = e["range"]
        u8 = tf.cast(tf.round(tf.clip_by_value((x - lo) / (hi - lo), 0.0, 1.0) * 255.0), tf.uint8)
        return tf.map_fn(tf.io.encode_png, u8, fn_output_signature=tf.TensorSpec((), tf.string))

    def serve_images(*args):
        feeds = [to_float(a, e) if e["role"] == "image" else a for a, e in zip(args, inputs)]
        result = serve(*feeds)
        return {(f"{k}_png_bytes" if outputs[k]["role"] == "image" else k): (
            to_png(v, outputs[k]) if outputs[k]["role"] == "image" else v) for k, v in result.items()}

    specs = [tf.TensorSpec([None], tf.string, name=f"{e['name']}_bytes") if e["role"] == "image"
             else tf.TensorSpec(e["shape"], e["dtype"], name=e["name"]) for e in inputs]
    return serve_images, specs


def has_images(spec):
    return any(e["role"] == "image" for e in spec["inputs"] + spec["outputs"])


def write_saved_model(part, spec, path, *, image_signature=False):
    """Write `part` as a SavedModel at `path`; returns the signature names."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(part)
    archive.add_endpoint(SERVING_DEFAULT, serving_fn(part, spec), input_signature=tensor_specs(spec))
    signatures = [SERVING_DEFAULT]
    if image_signature and has_images(spec):
        fn, specs = _image_fn(part, spec)
        archive.add_endpoint(SERVING_IMAGES, fn, input_signature=specs)
        signatures.append(SERVING_IMAGES)
    archive.write_out(str(path), verbose=False)
    return signatures


def load_signature(path, name=SERVING_DEFAULT):
    """`fn(**numpy inputs) -> {name: numpy}` for signature `name` of the SavedModel at `path`."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    sig = loaded.signatures[name]

    def run(**feeds):
        out = sig(**{k: tf.constant(v) for k, v in feeds.items()})
        return {k: v.numpy() for k, v in out.items()}

    run.loaded = loaded  # keep the trackable alive
    return run
