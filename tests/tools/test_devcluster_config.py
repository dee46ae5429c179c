"""Pure unit tests of the dev cluster's rendered configuration files."""

from __future__ import annotations

from pathlib import Path

import pytest

import slurm_magics.devcluster as devcluster
from slurm_magics.devcluster.config import (
    AUTHORIZED_KEY_MARKER,
    CONFIG_HEADER,
    PARTITIONS,
    ClusterParams,
    Layout,
    authorized_keys_line,
    known_hosts_line,
    real_memory_mb,
    render_db_setup_sql,
    render_my_cnf,
    render_slurm_conf,
    render_slurmdbd_conf,
    render_sshd_config,
    update_authorized_keys,
)

STATE = Path("/srv/dc-state")
CLIENT_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClient slurm-magics-devcluster\n"
HOST_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHost root@vm\n"


@pytest.fixture
def params() -> ClusterParams:
    return ClusterParams(
        layout=Layout(STATE),
        hostname="node7",
        real_memory_mb=23000,
        db_port=40001,
        db_password="s3cr'et",
        ssh_port=40002,
    )


def _settings(text: str) -> dict[str, str]:
    """`Key=value` lines (first word) of a slurm.conf-style file; comments skipped."""
    settings: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        settings[key] = value
    return settings


def _words(line: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in line.split())


def test_all_is_explicit() -> None:
    assert sorted(devcluster.__all__) == [
        "ClusterInfo",
        "ContainersInfo",
        "DevClusterError",
        "SSHInfo",
        "down",
        "load_info",
        "state_dir",
        "status",
        "up",
    ]
    for name in devcluster.__all__:
        assert hasattr(devcluster, name)


def test_slurm_conf_key_settings(params: ClusterParams) -> None:
    text = render_slurm_conf(params)
    assert text.startswith(CONFIG_HEADER + "\n")
    settings = _settings(text)
    expected = {
        "ClusterName": "devcluster",
        "SlurmUser": "root",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core_Memory",
        "SlurmdParameters": "config_overrides",
        "MaxArraySize": "100001",
        "MaxJobCount": "200000",
        "MinJobAge": "300",
        "JobAcctGatherType": "jobacct_gather/linux",
        "JobAcctGatherParams": "OverMemoryKill",
        "JobAcctGatherFrequency": "1",
        "SlurmdTimeout": "30",
        "KillWait": "10",
        "AccountingStorageType": "accounting_storage/slurmdbd",
        "AuthType": "auth/munge",
    }
    for key, value in expected.items():
        assert settings.get(key) == value, key
    assert settings["SlurmctldHost"].split("(")[0] == "node7"
    assert "batch_sched_delay=0" in settings["SchedulerParameters"]


def test_slurm_conf_node_and_partitions(params: ClusterParams) -> None:
    lines = render_slurm_conf(params).splitlines()
    (node_line,) = [line for line in lines if line.startswith("NodeName=")]
    node = _words(node_line)
    assert node["NodeName"] == "node7"
    assert node["CPUs"] == "16"
    assert node["RealMemory"] == "23000"
    partitions = [_words(line) for line in lines if line.startswith("PartitionName=")]
    assert [p["PartitionName"] for p in partitions] == ["debug", "batch"] == list(PARTITIONS)
    assert [p["Default"] for p in partitions] == ["YES", "NO"]
    for partition in partitions:
        assert partition["DefMemPerCPU"] == "500"
        assert partition["Nodes"] == "ALL"
        assert partition["State"] == "UP"
    assert partitions[0]["MaxTime"] == "INFINITE"


def test_slurm_conf_keeps_state_in_state_dir(params: ClusterParams) -> None:
    settings = _settings(render_slurm_conf(params))
    for key in (
        "StateSaveLocation",
        "SlurmdSpoolDir",
        "SlurmctldPidFile",
        "SlurmdPidFile",
        "SlurmctldLogFile",
        "SlurmdLogFile",
    ):
        assert Path(settings[key]).is_relative_to(STATE), key


def test_slurmdbd_conf(params: ClusterParams) -> None:
    settings = _settings(render_slurmdbd_conf(params))
    assert settings["StorageType"] == "accounting_storage/mysql"
    assert settings["StorageHost"] == "127.0.0.1"
    assert settings["StoragePort"] == "40001"
    assert settings["StorageLoc"] == "slurm_acct_db"
    assert settings["StorageUser"] == "slurm"
    assert settings["StoragePass"] == "s3cr'et"
    # The file is root-owned mode 600, consistent with SlurmUser=root.
    assert settings["SlurmUser"] == "root"
    assert settings["DbdPort"] == str(params.slurmdbd_port)
    assert Path(settings["PidFile"]).is_relative_to(STATE)
    assert Path(settings["LogFile"]).is_relative_to(STATE)


def test_my_cnf_is_private_instance(params: ClusterParams) -> None:
    text = render_my_cnf(params)
    assert f"datadir={STATE}/" in text
    assert f"socket={STATE}/" in text
    assert "port=40001" in text
    assert "bind-address=127.0.0.1" in text
    assert "[mariadbd]" in text


def test_db_setup_sql_is_idempotent_and_escaped(params: ClusterParams) -> None:
    sql = render_db_setup_sql(params)
    assert "CREATE DATABASE IF NOT EXISTS `slurm_acct_db`;" in sql
    assert "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1'" in sql
    assert "GRANT ALL PRIVILEGES ON `slurm_acct_db`.* TO 'slurm'@'127.0.0.1';" in sql
    assert "IDENTIFIED BY 's3cr\\'et'" in sql
    assert "s3cr'et" not in sql


def test_sshd_config(params: ClusterParams) -> None:
    lines = render_sshd_config(params).splitlines()
    assert "Port 40002" in lines
    assert "ListenAddress 127.0.0.1" in lines
    assert f"HostKey {STATE}/ssh/ssh_host_ed25519_key" in lines
    assert f"PidFile {STATE}/run/sshd.pid" in lines
    assert "PasswordAuthentication no" in lines
    assert "PermitRootLogin prohibit-password" in lines


def test_known_hosts_line() -> None:
    line = known_hosts_line(40002, HOST_PUB)
    assert line == "[127.0.0.1]:40002 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHost\n"


def test_authorized_keys_update_is_idempotent() -> None:
    line = authorized_keys_line(CLIENT_PUB)
    assert line.endswith(f" {AUTHORIZED_KEY_MARKER}\n")
    assert line.startswith('from="127.0.0.1,::1" ssh-ed25519 ')
    other = "ssh-rsa AAAAB3Nza someone@laptop\n"
    once = update_authorized_keys(other, line)
    assert once == other + line
    assert update_authorized_keys(once, line) == once
    # A new dev key replaces the old one instead of piling up.
    newer = authorized_keys_line("ssh-ed25519 AAAANEW x\n")
    again = update_authorized_keys(once, newer)
    assert again == other + newer
    assert update_authorized_keys("no-newline-at-end", line) == "no-newline-at-end\n" + line


def test_real_memory_is_a_bit_below_total() -> None:
    meminfo = "MemTotal:       24683540 kB\nMemFree:        23000000 kB\n"
    total_mb = 24683540 // 1024
    assert total_mb * 0.9 < real_memory_mb(meminfo) < total_mb
    assert real_memory_mb("MemTotal: 1048576 kB\n") == 768
    with pytest.raises(ValueError, match="MemTotal"):
        real_memory_mb("nothing here")
