"""Export: SavedModel (TF Serving) + ONNX (Triton, onnxruntime) with measured parity.

`kzoo export SOURCE` / `kzoo.export.export(SOURCE)` writes, for each endpoint of
the model's `inference_parts()`:

    export/
      models.config                 TF Serving model config list (all models of the tree)
      <name>/
        config.pbtxt                Triton model config (onnxruntime backend)
        <version>/
          saved_model.pb variables/ SavedModel, `serving_default` with named inputs/outputs
          model.onnx                tf2onnx, dynamic batch (and height/width where the card says)
          model.fp16.onnx           with --fp16
          kzoo.json                 the endpoint's model card spec, parity figures

(see export/README.md). Every endpoint is described by the model's card
(`kzoo.card`): a model without `card()` cannot be exported.

Modules: `source` (what can be exported), `spec` (the card's description of an
endpoint, checked against its network), `dynamic` (any height/width for a network
built at a fixed size), `saved_model`, `onnx_model`, `parity`, `layout` (versions,
atomic publication), `serving_config` (models.config, config.pbtxt), `exporter`.
"""

from kzoo.export.exporter import Exported, ParityError, export, read_info  # noqa: F401
