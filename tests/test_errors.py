from kzoo.cli import main
from kzoo.errors import KzooError


def test_kzoo_error_is_a_value_error():
    assert issubclass(KzooError, ValueError)


def test_cli_turns_kzoo_errors_into_one_line_and_exit_2(capsys):
    assert main(["train", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown recipe 'nope'")
