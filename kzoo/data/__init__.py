"""Datasets for kzoo recipes: offline builtins, TFDS, and image folders.

A spec string picks the source:

- ``builtin:digits`` -- scikit-learn's 8x8 handwritten digits (1,797, labelled).
- ``builtin:faces`` -- the 100 face crops of scikit-image's LFW subset.
- ``tfds:NAME[/CONFIG][:SPLIT]`` -- any TensorFlow Datasets image dataset.
- a folder path -- images (sub-folders become class labels).

Every source yields float32 images scaled to [-1, 1] (and int32 labels where the
source has them) through a tf.data pipeline; `load` returns an `ImageData`.
"""

from kzoo.data.images import ImageData, batch_pipeline, load  # noqa: F401
