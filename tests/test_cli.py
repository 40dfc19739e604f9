"""The `cosim` command's own behaviour (the simulator runs in the ns-3 tests)."""

from typer.testing import CliRunner

from cosim.cli import app
from cosim.wire import bridge

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "simulate" in result.output and "shm" in result.output


def test_shm_list_and_clean_show_and_remove_stale_segments():
    seg = bridge.ShmSegment(1)
    seg.header["python_pid"] = 2**22 + 12345  # above pid_max: certainly not running
    try:
        listed = runner.invoke(app, ["shm", "list"])
        assert seg.name in listed.output and "stale" in listed.output
        cleaned = runner.invoke(app, ["shm", "clean"])
        assert cleaned.exit_code == 0 and seg.name in cleaned.output
        assert not seg.path.exists()
    finally:
        seg.close()


def test_invalid_setting_is_one_clear_error():
    result = runner.invoke(app, ["simulate", "--radio", "wimax"])
    assert result.exit_code == 2
    assert "scenario.radio='wimax' is invalid" in result.output
    assert "Traceback" not in result.output


def test_user_text_in_an_error_prints_verbatim(tmp_path):
    """rich would turn `:x:` into an emoji and swallow `[bold]...[/]` as markup."""
    folder = tmp_path / "root:x:0:[bold]dir"
    folder.mkdir()
    config = folder / "my:x:[red]conf.yaml"
    config.write_text("rounds: 2\nseed: [oops\n")
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 2
    assert f"error: {config}: not valid YAML" in result.output
    missing = runner.invoke(app, ["sumo", "trace", "--net", str(folder / "no[such]:x:.net.xml")])
    assert missing.exit_code == 2 and f"network {folder}/no[such]:x:.net.xml does" in missing.output
