"""The server extension's REST API, in a real `jupyter server`: installed, behind Jupyter's
auth, and strict about its input (every bad request is a 400 that says what was wrong).

Its answers about real jobs, and cancelling them, are in test_server_api_jobs.py.
"""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.lab_server import JupyterProcess, jupyter


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterProcess]:
    root = tmp_path_factory.mktemp("server-root")
    with jupyter("server", root, tmp_path_factory.mktemp("server-logs")) as process:
        yield process


# -- the extension is there, and behind Jupyter's auth ---------------------------------------
def test_server_extension_is_enabled_by_pip_install() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    assert re.search(r"slurm_magics\.server\s+enabled", text), text
    assert re.search(r"slurm_magics\.server\s+OK", text), text
    installed = Path(sys.prefix, "etc/jupyter/jupyter_server_config.d/slurm_magics.json")
    assert installed.is_file()


ENDPOINTS = [
    ("GET", "jobs"),
    ("GET", "queue"),
    ("GET", "jobs/123/log"),
    ("GET", "runs/some-run/graph"),
    ("POST", "cancel"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_every_endpoint_needs_authentication(
    server: JupyterProcess, method: str, path: str, token: str | None
) -> None:
    body = {"job_id": "123"} if method == "POST" else None
    reply = server.api(method, path, token=token, body=body)
    assert reply.status in (401, 403), reply
    assert "registry" not in str(reply.body)


def test_a_browser_session_must_send_the_xsrf_token_to_cancel(server: JupyterProcess) -> None:
    # Logged in with a cookie (as a browser is), a POST without the XSRF header -- what a
    # forged cross-site form would send -- is refused; with it, it reaches the handler.
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(server.url + "login", timeout=30).close()
    xsrf = next(cookie.value for cookie in jar if cookie.name == "_xsrf")
    form = urllib.parse.urlencode({"password": server.token, "_xsrf": xsrf}).encode()
    opener.open(server.url + "login", data=form, timeout=30).close()
    assert any(cookie.name.startswith("username-") for cookie in jar)

    def cancel(headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            server.url + "slurm-magics/api/cancel",
            data=b'{"job_id": "999999999"}',
            method="POST",
            headers={"Content-Type": "application/json", **headers},
        )
        try:
            with opener.open(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            error.close()
            return error.code

    assert cancel({}) == 403
    assert cancel({"X-XSRFToken": "forged"}) == 403
    assert cancel({"X-XSRFToken": xsrf}) == 404  # authenticated; that job is unknown


# -- input validation -----------------------------------------------------------------------
BAD_REQUESTS = [
    ("GET", "jobs?limit=0", None, "limit='0' must be a whole number from 1 to 500"),
    ("GET", "jobs?limit=501", None, "from 1 to 500"),
    ("GET", "jobs?offset=-1", None, "offset='-1' must be a whole number"),
    ("GET", "jobs?limit=ten", None, "limit='ten'"),
    ("GET", "jobs/12x/log", None, "'12x' is not a SLURM job id"),
    ("GET", "jobs/12_/log", None, "is not a SLURM job id"),
    ("GET", "jobs/..%2F..%2Fetc%2Fpasswd/log", None, "is not a SLURM job id"),
    ("GET", "jobs/123/log?stream=in", None, "stream='in' must be 'out' or 'err'"),
    ("GET", "jobs/123/log?bytes=65537", None, "from 1 to 65536"),
    ("GET", "jobs/123/log?bytes=100%25", None, "bytes='100%' must be a whole number"),
    ("GET", "runs/a%20b/graph", None, "is not a slurm_magics run id"),
    ("POST", "cancel", b"not json", "the body must be JSON"),
    ("POST", "cancel", b"[1, 2]", "must be a JSON object"),
    ("POST", "cancel", b"{}", "exactly one of job_id"),
    ("POST", "cancel", b'{"job_id": "1", "run_id": "x"}', "exactly one of job_id"),
    ("POST", "cancel", b'{"job_id": 123}', "job_id must be a string, not int"),
    ("POST", "cancel", b'{"job_id": "123; rm -rf ~"}', "is not a SLURM job id"),
    ("POST", "cancel", b'{"job_id": "123 456"}', "is not a SLURM job id"),
    ("POST", "cancel", b'{"job_id": "-1"}', "is not a SLURM job id"),
    ("POST", "cancel", b'{"job_id": "123\\n"}', "is not a SLURM job id"),
    ("GET", "jobs/123%0A/log", None, "is not a SLURM job id"),
    ("GET", "runs/abc%0A/graph", None, "is not a slurm_magics run id"),
    ("POST", "cancel", b'{"user": "root"}', "unknown field(s) ['user']"),
    ("POST", "cancel", b'{"run_id": "../x"}', "is not a slurm_magics run id"),
    ("POST", "cancel", b'{"job_id": "' + b"1" * 5000 + b'"}', "larger than 4096 bytes"),
]


@pytest.mark.parametrize(("method", "path", "raw", "message"), BAD_REQUESTS)
def test_bad_input_is_a_400_that_says_what_was_wrong(
    server: JupyterProcess, method: str, path: str, raw: bytes | None, message: str
) -> None:
    reply = server.api(method, path, raw_body=raw)
    assert reply.status == 400, reply
    assert message in reply.body["message"], reply.body


def test_ids_that_the_registry_does_not_know_are_404(server: JupyterProcess) -> None:
    for method, path, body in [
        ("GET", "jobs/999999999/log", None),
        ("GET", "runs/no-such-run/graph", None),
        ("POST", "cancel", {"job_id": "999999999"}),
        ("POST", "cancel", {"run_id": "no-such-run"}),
    ]:
        reply = server.api(method, path, body=body)
        assert reply.status == 404, (path, reply)
        assert "not in the slurm_magics registry" in reply.body["message"]
