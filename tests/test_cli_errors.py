"""User mistakes end in one line and exit code 2, without a traceback (`--debug` shows one)."""

from __future__ import annotations

from pathlib import Path


def test_a_missing_config_file_is_one_line(cli, tmp_path: Path) -> None:
    code, out = cli("task", "publish", "--config", tmp_path / "missing.toml")
    assert code == 2 and "missing.toml" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def test_debug_shows_the_traceback(cli, tmp_path: Path) -> None:
    code, out = cli("--debug", "task", "publish", "--config", tmp_path / "missing.toml")
    assert code == 2 and "Traceback" in out and "missing.toml" in out


def test_out_of_range_options_are_usage_errors(cli) -> None:
    for args in (
        ["audit", "--task", "0", "--round", "0"],
        ["client", "run", "--task", "0", "--data-owner", "-1"],
        ["task", "status", "--task", "-3"],
        ["bench", "no-such-bench"],
    ):
        code, out = cli(*args)
        assert code == 2, (args, out)
        assert "Traceback" not in out, args


def test_a_directory_is_not_a_file_to_hash(cli, tmp_path: Path) -> None:
    code, out = cli("ipfs", "cid", tmp_path)
    assert code == 2 and "Traceback" not in out
