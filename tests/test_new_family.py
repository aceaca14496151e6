"""Adding a model family touches only its own files.

A throwaway family that lives outside kzoo (tests/fixtures/new_family/kzoo_toy: an
options declaration, a model class with its entry point, a recipe and its preset
TOML) is registered by a pytest plugin before collection, and the contract tests,
which name no family, run on it unchanged in a subprocess:

- tests/models/test_contract.py: train step, .keras round trip, mixed precision,
  config round trip (the XLA one is marked slow);
- tests/models/test_card_contract.py: card vs networks, declared output values,
  dynamic sizes;
- tests/export/test_contract.py: SavedModel + ONNX export with parity;
- tests/recipes/test_runner.py: a smoke run of its recipe (run directory, samples,
  metrics, saved models), at the recipe's tiny flags on its own quick preset;
- tests/test_zoo.py, tests/recipes/test_registry.py, tests/test_options.py: the
  registries and the options declaration against the constructor.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILY = ROOT / "tests" / "fixtures" / "new_family"
CONTRACTS = ["tests/models/test_contract.py", "tests/models/test_card_contract.py",
             "tests/export/test_contract.py",
             "tests/recipes/test_runner.py::test_every_registered_recipe_trains_and_writes_its_run_dir",
             "tests/test_zoo.py", "tests/recipes/test_registry.py", "tests/test_options.py"]


def test_a_family_registered_from_outside_passes_the_contract_tests_unchanged():
    assert not list((ROOT / "kzoo").rglob("*toy*")), "the family must live outside kzoo"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAMILY), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:randomly", "-p", "kzoo_toy.plugin",
                           "-k", "toy", *CONTRACTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = set(re.findall(r"^PASSED (\S+)", proc.stdout, re.M))
    expected = {
        "tests/models/test_contract.py::test_train_step_updates_every_optimizers_weights[toy_ae]",
        "tests/models/test_contract.py::test_keras_file_round_trip_gives_equal_outputs[toy_ae]",
        "tests/models/test_contract.py::test_train_step_under_mixed_precision[toy_ae]",
        "tests/models/test_contract.py::test_config_round_trip[toy_ae]",
        "tests/models/test_card_contract.py::test_card_declares_the_inference_networks[toy_ae]",
        "tests/models/test_card_contract.py::test_outputs_hold_their_declared_values[toy_ae]",
        "tests/models/test_card_contract.py::test_dynamic_endpoints_take_base_size_and_the_next_multiple[toy_ae]",
        "tests/export/test_contract.py::test_every_endpoint_exports_with_parity_as_its_card_declares[toy_ae]",
        "tests/recipes/test_runner.py::test_every_registered_recipe_trains_and_writes_its_run_dir[toy]",
        "tests/test_zoo.py::test_every_model_builds_and_round_trips_its_config[toy_ae]",
        "tests/recipes/test_registry.py::test_every_recipe_trains_a_registered_model_and_derives_its_options[toy]",
        "tests/test_options.py::test_every_registered_constructor_matches_its_declaration[toy_ae]",
    }
    assert expected <= passed, sorted(expected - passed)
