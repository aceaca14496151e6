"""Training recipes: `python -m kzoo.recipes.<name>` or `kzoo train <name>`.

`registry` (which recipes exist), `config` (training options, model options derived
from the model's constructor, presets, flags), `distribute` (devices, strategies),
`callbacks` (checkpoints, samples, metrics) and `runner` (the run itself).
"""
