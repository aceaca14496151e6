"""Training recipes: `python -m kzoo.recipes.<name>` (see `kzoo.recipes.runner`)."""
