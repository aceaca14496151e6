"""Shared checks of the converter tests."""


def assert_convert_refused(cases, out, capsys):
    """Each `kzoo hub convert ARGS --out out` of `cases` ((args, message) pairs) exits 2 with
    one `error:` line holding `message`, and writes nothing at `out`."""
    from kzoo.cli import main

    for args, message in cases:
        assert main(["hub", "convert", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
        assert not out.exists()
