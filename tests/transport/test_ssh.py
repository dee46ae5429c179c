"""The SSH transport against the dev cluster's real sshd: framing, limits, keys, config."""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import TypeVar

import asyncssh
import cloudpickle
import pytest

import slurm_magics as sm
from slurm_magics.devcluster import SSHInfo, load_info
from slurm_magics.transport import (
    HostKeyError,
    LocalTransport,
    SSHError,
    SSHLoginError,
    SSHTransport,
)
from tests.helpers import transport_for, using

pytestmark = pytest.mark.cluster

T = TypeVar("T")


@pytest.fixture(scope="module")
def ssh() -> SSHInfo:
    return load_info().ssh


def host_fingerprint(ssh: SSHInfo) -> str:
    key_type, key_data = ssh.known_hosts_path.read_text().split()[1:3]
    return str(asyncssh.import_public_key(f"{key_type} {key_data}").get_fingerprint("sha256"))


def test_commands_keep_output_exit_code_and_input_apart(ssh: SSHInfo) -> None:
    async def scenario(t: SSHTransport) -> None:
        mixed = await t.run(["sh", "-c", "echo out; echo err >&2; printf no-newline; exit 3"])
        assert (mixed.returncode, mixed.stdout, mixed.stderr) == (3, "out\nno-newline", "err\n")
        tricky = ["it's", "$HOME", "`id`", "a;b", "two\nlines", "*", ""]
        echoed = await t.run(["printf", "%s|", *tricky])
        assert echoed.stdout == "|".join(tricky) + "|"
        data = bytes(range(256)) * 100 + b"no newline at the end"  # any bytes, exactly
        digest = await t.run(["sh", "-c", "md5sum; echo done >&2"], input=data)
        assert (digest.stdout, digest.stderr) == (f"{hashlib.md5(data).hexdigest()}  -\n", "done\n")
        assert (await t.run(["cat"], input=b"")).stdout == ""
        missing = await t.run(["no-such-command-here"])
        assert missing.returncode == 127 and "not found" in missing.stderr
        # Builtins run in a subshell: they cannot change or end the shell.
        assert (await t.run(["cd", "/"])).returncode == 0
        assert (await t.run(["exit", "4"])).returncode == 4
        assert (await t.run(["pwd"])).stdout.strip() == await t.home()
        slow = await t.run(["sleep", "30"], timeout=0.5)
        assert slow.returncode == -9 and "timed out" in slow.stderr
        assert (await t.run(["id", "-un"])).stdout.strip() == ssh.user
        assert t.stats["channels_opened"] <= 3  # one shell at a time, a new one after the timeout

    using(transport_for(ssh), scenario)


def test_files_are_private_atomic_and_missing_ones_are_quiet(ssh: SSHInfo, tmp_path: Path) -> None:
    base = f"{tmp_path}/a/b/c"

    async def scenario(t: SSHTransport) -> None:
        await t.make_dirs(base)
        await t.make_dirs(base)  # existing folders are fine
        await t.write_files({f"{base}/one": b"1" * 10_000, f"{base}/two": b"2"})
        await t.write_files({f"{base}/two": b"22"})  # replaced whole
        assert await t.read_file(f"{base}/two") == b"22"
        assert await t.read_tail(f"{base}/one", 5) == b"11111"
        assert await t.read_tail(f"{base}/two", 5) == b"22"
        assert await t.read_tail(f"{base}/none", 5) == b""
        assert sorted(await t.list_dir(base)) == ["one", "two"]  # no temporary files left
        assert await t.list_dir(f"{base}/none") == []
        with pytest.raises(FileNotFoundError):
            await t.read_file(f"{base}/none")
        await t.remove_files([f"{base}/one", f"{base}/none"])
        assert await t.list_dir(base) == ["two"]

    using(transport_for(ssh), scenario)
    assert Path(base).stat().st_mode & 0o777 == 0o700
    assert Path(base, "two").stat().st_mode & 0o777 == 0o600


def test_more_concurrent_operations_than_max_sessions(ssh: SSHInfo, tmp_path: Path) -> None:
    """sshd allows 10 channels per connection; 90 concurrent operations must all succeed."""
    (tmp_path / "data").write_bytes(b"x" * 100_000)

    async def scenario(t: SSHTransport) -> None:
        results = await asyncio.gather(
            *(t.run(["sh", "-c", f"sleep 0.3; echo {n}"]) for n in range(30)),
            *(t.read_file(f"{tmp_path}/data") for _ in range(30)),
            *(t.list_dir(str(tmp_path)) for _ in range(30)),
        )
        assert [r.stdout for r in results[:30]] == [f"{n}\n" for n in range(30)]  # type: ignore[union-attr]
        assert all(r == b"x" * 100_000 for r in results[30:60])
        assert all(r == ["data"] for r in results[60:])
        assert t.stats["peak_channels"] <= t.max_channels < 10

    transport = transport_for(ssh, max_shells=50)  # asks for more shells than channels exist
    using(transport, scenario)
    assert transport.max_shells == transport.max_channels - 1  # one channel kept for SFTP
    assert transport.stats["peak_channels"] == transport.max_channels


def test_unknown_host_key_is_refused_with_its_fingerprint(ssh: SSHInfo, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    transport = transport_for(ssh, known_hosts=empty)
    with pytest.raises(HostKeyError) as refused:
        sm.Cluster(transport, root=str(tmp_path / "root"), python=sys.executable)
    message = str(refused.value)
    assert host_fingerprint(ssh) in message and "unknown" in message
    assert f"ssh-keyscan -p {ssh.port} {ssh.host} >> {empty}" in message
    assert "known_hosts=" in message
    assert transport.stats["channels_opened"] == 0  # no channel, so no command ran: no sbatch
    assert not (tmp_path / "root").exists()


def test_changed_host_key_is_refused_and_says_so(ssh: SSHInfo, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{ssh.host}]:{ssh.port} {other}")
    with pytest.raises(HostKeyError) as refused:
        sm.connect(
            ssh.host,
            user=ssh.user,
            port=ssh.port,
            known_hosts=known,
            client_keys=[ssh.key_path],
            root=str(tmp_path / "root"),
        )
    assert "CHANGED" in str(refused.value) and host_fingerprint(ssh) in str(refused.value)
    assert f"ssh-keygen -f {known} -R '[{ssh.host}]:{ssh.port}'" in str(refused.value)


def ssh_config(ssh: SSHInfo, tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(
        f"Host sm-jump sm-dev sm-via-jump sm-unchecked\n"
        f"    HostName {ssh.host}\n    Port {ssh.port}\n    User {ssh.user}\n"
        f"    IdentityFile {ssh.key_path}\n"
        "Host sm-jump sm-dev sm-via-jump\n"
        f"    UserKnownHostsFile {ssh.known_hosts_path}\n"
        "Host sm-via-jump\n    ProxyJump sm-jump\n"
        "Host sm-unchecked\n    UserKnownHostsFile none\n" + extra
    )
    return path


def connections_to(port: int) -> set[tuple[str, str]]:
    """Established TCP connections to ``port`` on this machine: (client end, its program)."""
    listed = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = set()
    for line in listed.splitlines():
        program = re.search(r'users:\(\("([^"]+)"', line)
        found.add((line.split()[2], program.group(1) if program else "?"))
    return found


def test_ssh_config_aliases_work(ssh: SSHInfo, tmp_path: Path) -> None:
    config = ssh_config(ssh, tmp_path)

    async def who(t: SSHTransport) -> str:
        return (await t.run(["id", "-un"])).stdout.strip()

    async def hop_makers(t: SSHTransport) -> list[str]:
        """The programs that opened TCP connections to the target's sshd meanwhile."""
        before = connections_to(ssh.port)
        assert (await t.run(["id", "-un"])).stdout.strip() == ssh.user
        return sorted(program for _, program in connections_to(ssh.port) - before)

    assert using(SSHTransport("sm-dev", ssh_config=config), who) == ssh.user
    assert using(SSHTransport("sm-via-jump", ssh_config=config), who) == ssh.user
    # The jump and the target are one sshd here, so prove the hop: through ProxyJump the
    # target's connection is opened by the jump's sshd (direct-tcpip), not by this process.
    assert "sshd" not in using(SSHTransport("sm-dev", ssh_config=config), hop_makers)
    assert "sshd" in using(SSHTransport("sm-via-jump", ssh_config=config), hop_makers)
    with pytest.raises(SSHLoginError, match="UserKnownHostsFile none"):
        using(SSHTransport("sm-unchecked", ssh_config=config), who)
    # The whole path: an alias given to sm.connect runs a job.
    cluster = sm.connect(
        "sm-dev",
        ssh_config=config,
        python=sys.executable,
        root=str(tmp_path / "root"),
        partition="debug",
    )
    try:
        assert cluster.description == "ssh://sm-dev"
        assert cluster.submit(pow, 2, 10).result(timeout=120) == 1024
    finally:
        cluster.close()


def test_remote_python_without_cloudpickle_fails_at_connect(ssh: SSHInfo, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    settings = {
        "user": ssh.user,
        "port": ssh.port,
        "known_hosts": ssh.known_hosts_path,
        "client_keys": [ssh.key_path],
        "root": str(tmp_path / "root"),
    }
    install = f"-m pip install cloudpickle=={cloudpickle.__version__}` on {ssh.user}@{ssh.host}"
    with pytest.raises(sm.ClusterError, match="cloudpickle is not importable") as refused:
        sm.connect(ssh.host, python=str(bare / "bin" / "python"), **settings)  # type: ignore[arg-type]
    assert install in str(refused.value)
    with pytest.raises(sm.ClusterError, match="was not found on"):
        sm.connect(ssh.host, python="/no/such/python3", **settings)  # type: ignore[arg-type]
    # The setup lines run first, as in the job scripts.
    activate = f"source {bare}/bin/activate"
    with pytest.raises(sm.ClusterError, match=re.escape(f"not importable by `{bare}/bin/py")):
        sm.connect(ssh.host, python="python", setup=[activate], **settings)  # type: ignore[arg-type]
    # The same check guards the local transport.
    with pytest.raises(sm.ClusterError, match="cloudpickle is not importable"):
        sm.Cluster(LocalTransport(), root=str(tmp_path / "root"), python=f"{bare}/bin/python")


def test_errors_are_cluster_errors() -> None:
    assert issubclass(SSHError, sm.ClusterError)
    assert issubclass(HostKeyError, SSHError) and issubclass(SSHLoginError, SSHError)


def test_fresh_cluster_has_its_own_transport(
    cluster: sm.Cluster, fresh_cluster: sm.Cluster
) -> None:
    assert type(fresh_cluster.transport) is type(cluster.transport)
    assert fresh_cluster.transport is not cluster.transport
    assert fresh_cluster.submit(pow, 3, 3).result(timeout=120) == 27
