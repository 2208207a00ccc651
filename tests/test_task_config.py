"""task.toml -> TaskConfig: the documented example loads; settings the chain would drop are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.core.protocol.task import TaskConfig, TaskConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_the_documented_task_loads() -> None:
    cfg = TaskConfig.from_toml(ROOT / "task.toml")
    assert cfg.defence and cfg.clients > 0


@pytest.mark.parametrize(
    "table",
    [
        "[defence_kwargs]\nnum_malicious = 4\n",
        '[mechanism]\ndefence = "krum"\n[mechanism.defence_kwargs]\nnum_malicious = 4\n',
    ],
)
def test_defence_kwargs_are_refused_with_the_on_chain_way_to_say_it(tmp_path: Path, table: str) -> None:
    path = tmp_path / "task.toml"
    path.write_text(table)
    with pytest.raises(ValueError, match=r'not recorded on chain.*defence = "krum\?num_malicious=4"'):
        TaskConfig.from_toml(path)


def test_parameters_in_the_defence_name_reach_the_chain_and_come_back(tmp_path: Path) -> None:
    path = tmp_path / "task.toml"
    path.write_text(
        '[task]\nmodel = "mlp"\ndataset = "mnist"\nrounds = 2\n[mechanism]\ndefence = "krum?num_malicious=4"\n'
    )
    cfg = TaskConfig.from_toml(path)
    spec, mech = cfg.to_chain("bafy", b"\x01" * 32)
    assert TaskConfig.from_chain(spec, mech).defence == "krum?num_malicious=4"


GOOD = '[task]\nmodel = "mlp"\ndataset = "mnist"\nrounds = 2\nclients = 4\nmin_clients = 4\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no [task] table"),
        ('[mechanism]\ndefence = "bvfb"\n', "no [task] table"),
        ('[task]\ndataset = "mnist"\nrounds = 2\n', "must set model"),
        ('[task]\nmodel = "mlp"\ndataset = "mnist"\nrounds = "ten"\n', "rounds must be int, not 'ten'"),
        (GOOD.replace("rounds = 2", "rounds = -1"), "rounds must be at least 1"),
        (GOOD + "reward_per_round_eth = -1.0\n", "reward_per_round_eth must be positive"),
        (GOOD + "[mechanism]\ncommittee_size = 0\n", "committee_size must be at least 1"),
        (GOOD + "[mechanism]\nquorum = 0.4\n", "quorum must be in (0.5, 1]"),
        (GOOD.replace("min_clients = 4", "min_clients = 9"), "min_clients (9) <= clients (4)"),
        (GOOD + "colour = 3\n", "unknown task settings ['colour']"),
        (GOOD.replace('"mlp"', '"resnet"'), "model 'resnet' is not one of"),
        (GOOD + '[privacy]\ndp = "fancy"\n', "dp 'fancy' is not one of"),
        (GOOD + '[mechanism]\ndefence = "no-such"\n', "unknown defence"),
        (GOOD + "[mechanism]\nclient_share = 0.9\n", "must be 1, not 1.3"),
        ("[task\nmodel=", "not valid TOML"),
    ],
)
def test_every_bad_setting_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "task.toml"
    path.write_text(text)
    with pytest.raises(TaskConfigError) as err:
        TaskConfig.from_toml(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(TaskConfigError, match="no such file"):
        TaskConfig.from_toml(tmp_path / "nope.toml")
