"""`fedledger bench`: help and argument checking only (the benchmarks themselves take minutes)."""

from __future__ import annotations

from typer.testing import CliRunner

from fedledger.cli import app
from fedledger.commands.bench import BENCHMARKS, QUICK_ORDER

runner = CliRunner()


def test_bench_help_lists_every_benchmark() -> None:
    result = runner.invoke(app, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    assert "--full" in result.output
    for name in ("quick", "bvfb", "overhead"):
        assert name in result.output


def test_unknown_benchmark_is_a_clear_error(cli) -> None:
    code, out = cli("bench", "no-such-bench")
    assert code == 2
    assert "unknown benchmark 'no-such-bench'" in out
    assert "bvfb" in out


def test_quick_set_covers_every_benchmark_once() -> None:
    assert sorted(QUICK_ORDER) == sorted(BENCHMARKS)
