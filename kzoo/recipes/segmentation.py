"""What the segmentation recipes (unet, deeplab) share: one recipe, two configs."""

from __future__ import annotations

import dataclasses

import numpy as np

from kzoo.errors import KzooError
from kzoo.recipes.config import TrainConfig, create, total_steps
from kzoo.recipes.registry import Recipe

GRID_ROWS = 8


@dataclasses.dataclass
class SegmentationConfig(TrainConfig):
    """Options of the segmentation recipes (the networks' and class weights are the model's).

    Attributes:
        num_classes: classes of the data; None: the data's own (folders: largest label + 1).
        optimizer: "sgd" or "adam".
        learning_rate, momentum, weight_decay: the optimizer's.
        poly_power: "poly" learning rate (1 - step/steps)^power; None: constant.
        random_flip: left-right flips of training pairs.
        scale_range: random rescaling of training pairs, then crop/pad back.
        eval_samples: held-out examples scored (None: all; 0: no evaluation).
    """

    data: str = "builtin:shapes"
    num_classes: int | None = None
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    poly_power: float | None = None
    random_flip: bool = True
    scale_range: tuple = (1.0, 1.0)


def segmentation_recipe(name, config_cls, *, model, options, tiny):
    """A `Recipe` training the registered segmentation model `model`, whose constructor
    declares `options` (`kzoo.options`)."""

    def load_data(cfg):
        from kzoo.data.segmentation import load_segmentation

        data = load_segmentation(cfg.data, image_size=cfg.image_size, split="train",
                                 num_classes=cfg.num_classes)
        if cfg.num_classes and cfg.num_classes != data.num_classes:
            raise KzooError(f"--num-classes {cfg.num_classes} does not match {cfg.data}, "
                            f"which has {data.num_classes} classes")
        return data, _heldout(cfg)

    def build(cfg, data):
        import keras

        weights = cfg.model.get("class_weights")
        if weights is not None and (len(weights) != data.num_classes or min(weights) < 0):
            raise KzooError(f"--class-weights needs {data.num_classes} non-negative numbers (one per "
                            f"class), got {','.join(map(str, weights))}")
        built = create(cfg, model, channels=data.channels, num_classes=data.num_classes)
        lr = cfg.learning_rate
        if cfg.poly_power is not None:
            lr = keras.optimizers.schedules.PolynomialDecay(
                lr, decay_steps=total_steps(cfg, data), end_learning_rate=0.0, power=cfg.poly_power)
        decay = cfg.weight_decay or None
        if cfg.optimizer == "sgd":
            opt = keras.optimizers.SGD(lr, momentum=cfg.momentum, weight_decay=decay)
        elif cfg.optimizer == "adam":
            opt = keras.optimizers.Adam(lr, weight_decay=decay)
        else:
            raise KzooError(f"--optimizer must be sgd or adam, got {cfg.optimizer!r}")
        built.compile(optimizer=opt, jit_compile=cfg.jit_compile)
        return built

    def train_dataset(cfg, data, model):
        from kzoo.data import batch_pipeline
        from kzoo.data.segmentation import augment_fn

        augment = None
        if cfg.random_flip or tuple(cfg.scale_range) != (1.0, 1.0):
            if len(cfg.scale_range) != 2:
                raise KzooError(f"--scale-range needs two numbers (min,max), got {cfg.scale_range}")
            augment = augment_fn(flip=cfg.random_flip, scale_range=cfg.scale_range)
        return batch_pipeline(data, cfg.batch_size, seed=cfg.seed, augment=augment)

    def prepare_state(cfg, model, data):
        source = _heldout(cfg) or data
        (images, masks), = source.dataset.batch(GRID_ROWS).take(1).as_numpy_iterator()
        return {"grid_images": images, "grid_masks": masks}

    def sample_grid(cfg, model, state):
        from kzoo.viz import colorize, grid, to_uint8

        images = state["grid_images"]
        pred = model.predict_labels(images)
        rows = [to_uint8(images if images.shape[-1] == 3 else np.repeat(images, 3, -1)),
                colorize(pred), colorize(state["grid_masks"])]
        return grid(np.stack(rows, axis=1).reshape(-1, *rows[0].shape[1:]), 3)

    def evaluate(cfg, model, data, heldout):
        from kzoo.metrics import confusion_matrix, segmentation_scores

        source, prefix = (heldout, "heldout") if heldout is not None else (data, "train")
        confusion = np.zeros((data.num_classes, data.num_classes), np.int64)
        examples = source.dataset if cfg.eval_samples is None else source.dataset.take(cfg.eval_samples)
        for images, masks in examples.batch(cfg.batch_size).as_numpy_iterator():
            confusion += confusion_matrix(masks, model.predict_labels(images), data.num_classes,
                                          model.ignore_label)
        scores = {f"{prefix}_{k}": v for k, v in segmentation_scores(confusion).items()}
        # The trivial baseline beside it: the most frequent true class predicted everywhere
        # (IoU = its pixel share for that class, 0 for the others).
        truth = confusion.sum(axis=1)
        scores[f"{prefix}_majority_class_mean_iou"] = float(truth.max() / max(truth.sum(), 1)
                                                            / data.num_classes)
        return scores

    return Recipe(name=name, config_cls=config_cls, model=model, options=options, load_data=load_data,
                  build=build, train_dataset=train_dataset, sample_grid=sample_grid, evaluate=evaluate,
                  inference_model=lambda m: m.inference_parts()["segmenter"],
                  prepare_state=prepare_state, data_args=("channels", "num_classes"),
                  tiny=("--batch-size", "8", "--image-size", "16", "--eval-samples", "8", *tiny))


def _heldout(cfg):
    """The held-out split of builtin and tfds data (folders and explicit tfds splits: None)."""
    from kzoo.data.images import has_heldout_split
    from kzoo.data.segmentation import load_segmentation

    if has_heldout_split(cfg.data):
        return load_segmentation(cfg.data, image_size=cfg.image_size, split="test")
    return None
