"""kzoo model families. Importing a family module registers its models in `kzoo.zoo`."""
