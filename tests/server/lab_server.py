"""A real Jupyter server (or JupyterLab) in a subprocess, for the server extension's tests.

It runs on a free loopback port with a known token, a temporary root folder, and this
process's environment: ``SLURM_MAGICS_REGISTRY`` (set by conftest) makes it read the
registry that the tests' jobs are recorded in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

API = "slurm-magics/api"


@dataclasses.dataclass
class Reply:
    status: int
    body: Any


@dataclasses.dataclass
class JupyterProcess:
    url: str  # "http://127.0.0.1:PORT/"
    token: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw_body: bytes | None = None,
        token: str | bool | None = True,
        timeout: float = 60,
    ) -> Reply:
        """One HTTP request; ``token=True`` sends the server's token, a string another one,
        None/False none at all."""
        headers = {"Content-Type": "application/json"}
        if token is True:
            headers["Authorization"] = f"token {self.token}"
        elif isinstance(token, str):
            headers["Authorization"] = f"token {token}"
        data = raw_body if raw_body is not None else None
        if body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Reply(response.status, json.loads(response.read() or b"null"))
        except urllib.error.HTTPError as error:
            with error:
                text = error.read()
            try:
                return Reply(error.code, json.loads(text))
            except ValueError:
                return Reply(error.code, text.decode(errors="replace"))

    def api(self, method: str, path: str, **kwargs: Any) -> Reply:
        return self.request(method, f"{API}/{path}", **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def jupyter(app: str, root_dir: Path, log_dir: Path) -> Iterator[JupyterProcess]:
    """Start ``jupyter server`` or ``jupyter lab`` and stop it afterwards."""
    token = secrets.token_hex(16)
    port = free_port()
    log_path = log_dir / f"jupyter-{app}-{port}.log"
    argv = [
        sys.executable,
        "-m",
        "jupyter",
        app,
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.open_browser=False",
    ]
    if app == "lab":  # no news toast over the panel, no update check from a test
        argv += [
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    # Private config, settings, workspaces: nothing of the user's own setup leaks in, and
    # the extension must be enabled by what pip installed in sys.prefix.
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(log_dir / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(log_dir / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(log_dir / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(log_dir / "lab-workspaces"),
    }
    if app == "lab":  # answer the news question up front: no toast over the page
        settings = log_dir / "lab-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = JupyterProcess(f"http://127.0.0.1:{port}/", token, root_dir, log_path, process)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter {app} exited:\n{server.log()}")
            try:
                if server.request("GET", "api/status", timeout=5).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter {app} did not start in 90 s:\n{server.log()}")
            time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
