import json

from kzoo.cli import main


def test_hub_list_and_info(capsys):
    assert main(["hub", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["name", "task", "size", "metrics"]
    assert "cgan-digits@2" in out and "class-conditional-image-generation" in out and "32x32" in out
    assert "deeplab-shapes@1" in out and "semantic-segmentation" in out
    assert main(["hub", "info", "cgan-digits"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "cgan-digits" and info["metrics"]["class_consistency"] > 0.9


def test_hub_download_and_publish(tiny_run, tmp_path, capsys, kzoo_home, monkeypatch):
    catalog = tmp_path / "catalog.json"
    assert main(["hub", "publish", str(tiny_run), "--name", "tiny-cgan", "--to", str(tmp_path / "p"),
                 "--catalog", str(catalog)]) == 0
    out = capsys.readouterr().out
    assert "sha256" in out and "#sha256=" in out
    monkeypatch.setenv("KZOO_CATALOG", str(catalog))
    assert main(["hub", "download", "tiny-cgan", "--to", str(tmp_path / "copy")]) == 0
    assert (tmp_path / "copy" / "README.md").is_file()
    capsys.readouterr()
    assert main(["hub", "info", str(tmp_path / "p" / "tiny-cgan-1.tar.gz")]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["name"] == "tiny-cgan" and "model.keras" in meta["files"]


def test_hub_errors_are_one_line_exit_2(capsys):
    for argv in (["hub", "info", "cgan-digit"], ["hub", "frobnicate"], ["hub", "download"],
                 ["hub", "publish", "/nonexistent", "--name", "x"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: "), err
    main(["hub", "info", "cgan-digit"])
    assert "did you mean cgan-digits" in capsys.readouterr().err
