"""The command line, run in-process: catalog demo → index → search --json."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from audiorag.cli.app import app
from audiorag.settings import get_settings


@pytest.fixture
def cli_env(tmp_path, monkeypatch, tiny_clap_folder):
    monkeypatch.setenv("AUDIORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUDIORAG_CLAP_MODEL", str(tiny_clap_folder))
    monkeypatch.setenv("AUDIORAG_WORKERS", "0")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_catalog_index_search_round_trip(cli_env):
    runner = CliRunner()
    catalog = cli_env / "cat"
    result = runner.invoke(app, ["catalog", "demo", "--out", str(catalog), "--count", "3"])
    assert result.exit_code == 0, result.output
    assert (catalog / "licences.jsonl").is_file()

    report = cli_env / "report.json"
    result = runner.invoke(
        app, ["index", str(catalog), "--catalog", "mine", "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    counts = json.loads(report.read_text())["counts"]
    assert counts["indexed"] == 6 and counts["failed"] == 0

    result = runner.invoke(app, ["search", "drum loop", "--catalog", "mine", "-k", "4", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert 0 < len(hits) <= 4
    for hit in hits:
        assert set(hit) >= {"id", "score", "payload"}
        assert hit["payload"]["catalog"] == "mine"
        assert {"instrument", "genre", "bpm", "key", "licence"} <= set(hit["payload"])

    result = runner.invoke(app, ["search", "--key", "Q minor"])
    assert result.exit_code == 2 and "not a key" in result.output


def test_a_store_from_an_older_version_is_refused_with_what_to_do(cli_env):
    runner = CliRunner()
    assert runner.invoke(app, ["search", "-k", "1"]).exit_code == 0  # creates the store
    sidecar = get_settings().store_path / "store.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "schema": 1}))
    result = runner.invoke(app, ["search", "kick"])
    said = " ".join(result.output.split())  # the console wraps long paths anywhere
    assert result.exit_code == 2
    assert "another version of audiorag" in said and "index again" in said


def test_index_without_manifest_explains(cli_env):
    folder = cli_env / "empty-catalog"
    folder.mkdir()
    (folder / "loop.wav").write_bytes(b"RIFF")
    result = CliRunner().invoke(app, ["index", str(folder)])
    assert result.exit_code == 0
    assert "no licence manifest" in result.output
    assert "no licence entry" in result.output


def test_default_model_is_the_bundled_one(tmp_path, monkeypatch):
    from audiorag.components import BUNDLED_CLAP, load_embedder

    if not (BUNDLED_CLAP / "config.json").is_file():
        pytest.skip("bundled CLAP not in this checkout")
    monkeypatch.setenv("AUDIORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AUDIORAG_CLAP_MODEL", raising=False)
    get_settings.cache_clear()
    embedder = load_embedder(get_settings())
    assert embedder.embedder.id.startswith("clap-demo@")
    assert not (tmp_path / "data").exists()  # nothing was built or downloaded
    assert embedder.embed_text(["x"]).shape == (1, embedder.embedder.dim)
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("bundled", "loader", "setting"),
    [
        ("BUNDLED_CLAP", "load_embedder", "AUDIORAG_CLAP_MODEL"),
        ("BUNDLED_GENERATOR", "load_generator", "AUDIORAG_GENERATOR_MODEL"),
    ],
)
def test_a_missing_bundled_model_is_a_broken_install_named_with_the_setting(
    tmp_path, monkeypatch, bundled, loader, setting
):
    """No random stand-in: the error names the missing folder and the setting to set."""
    import audiorag.components

    missing = tmp_path / "missing"
    monkeypatch.setattr(audiorag.components, bundled, missing)
    monkeypatch.setenv("AUDIORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv(setting, raising=False)
    get_settings.cache_clear()
    with pytest.raises(audiorag.components.MissingModel) as error:
        getattr(audiorag.components, loader)(get_settings())
    assert str(missing) in str(error.value) and setting in str(error.value)
    assert not (tmp_path / "data").exists()  # nothing was built in its place
    get_settings.cache_clear()


def test_generate_writes_a_take_and_reports_bad_input(cli_env, tiny_generator_folder, monkeypatch):
    monkeypatch.setenv("AUDIORAG_GENERATOR_MODEL", str(tiny_generator_folder))
    monkeypatch.setenv("AUDIORAG_BLOCKED_TERMS", '["Daft Punk"]')
    get_settings.cache_clear()
    runner = CliRunner()
    catalog = cli_env / "cat"
    assert (
        runner.invoke(app, ["catalog", "demo", "--out", str(catalog), "--count", "3"]).exit_code
        == 0
    )
    assert runner.invoke(app, ["index", str(catalog), "--catalog", "mine"]).exit_code == 0
    out = cli_env / "takes"
    args = ["generate", "drum loop", "--duration", "1", "--steps", "3", "--out", str(out)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert (out / manifest["take_id"] / "audio.wav").is_file()
    assert (out / manifest["take_id"] / "audio.flac").is_file()
    assert manifest["seeds"] and all(s["catalog"] == "mine" for s in manifest["seeds"])
    result = runner.invoke(app, args)  # the human-readable summary, seed table included
    assert result.exit_code == 0, result.output
    assert "seeded by" in result.output and "time-stretch" not in result.output

    result = runner.invoke(app, [args[0], "like Daft-Punk", *args[2:]])
    assert result.exit_code == 2 and "Daft Punk" in result.output
    result = runner.invoke(app, [*args, "--strength", "2"])
    assert result.exit_code == 2 and "strength" in result.output


def test_a_configured_model_folder_that_does_not_exist_is_one_line_and_exit_2(
    cli_env, monkeypatch, capsys
):
    from audiorag.cli.app import main

    monkeypatch.setenv("AUDIORAG_CLAP_MODEL", str(cli_env / "no-such-clap"))
    monkeypatch.setattr("sys.argv", ["audiorag", "search", "drums"])
    get_settings.cache_clear()
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "AUDIORAG_CLAP_MODEL" in err and "no such folder" in err and "Traceback" not in err


def test_the_seed_table_says_what_alignment_did_not_which_tool_ran():
    from audiorag.cli.generate import alignment_done

    tool = {"method": "time-stretch + pitch-shift"}  # recorded whether or not it changed anything
    stretched = {**tool, "tempo_ratio": 1.0745, "source_bpm": 161.0, "target_bpm": 173.0}
    assert alignment_done({**stretched, "semitones": 0}) == "tempo ×1.07 (161 → 173 BPM)"
    assert alignment_done({**tool, "tempo_ratio": 1.0, "semitones": 3}) == "+3 st"
    assert alignment_done({**tool, "tempo_ratio": 1.0, "semitones": 0}) == "as is"
    assert alignment_done({"skipped": "unusable: bad file"}) == "skipped: unusable: bad file"
