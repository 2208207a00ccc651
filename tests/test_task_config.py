"""task.toml -> TaskConfig: the documented example loads; settings the chain would drop are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.core.protocol.task import TaskConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_documented_task_loads() -> None:
    cfg = TaskConfig.from_toml(ROOT / "task.toml")
    assert cfg.defence and cfg.clients > 0


@pytest.mark.parametrize("table", ["[defence_kwargs]\nnum_malicious = 4\n",
                                   "[mechanism]\ndefence = \"krum\"\n[mechanism.defence_kwargs]\nnum_malicious = 4\n"])
def test_defence_kwargs_are_refused_with_the_on_chain_way_to_say_it(tmp_path: Path, table: str) -> None:
    path = tmp_path / "task.toml"
    path.write_text(table)
    with pytest.raises(ValueError, match=r'not recorded on chain.*defence = "krum\?num_malicious=4"'):
        TaskConfig.from_toml(path)


def test_parameters_in_the_defence_name_reach_the_chain_and_come_back(tmp_path: Path) -> None:
    path = tmp_path / "task.toml"
    path.write_text('[mechanism]\ndefence = "krum?num_malicious=4"\n')
    cfg = TaskConfig.from_toml(path)
    spec, mech = cfg.to_chain("bafy", b"\x01" * 32)
    assert TaskConfig.from_chain(spec, mech).defence == "krum?num_malicious=4"
