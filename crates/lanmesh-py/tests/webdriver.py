"""Just enough WebDriver to drive headless Chromium from a pytest: a chromedriver process
on a loopback port and its HTTP API with JSON bodies (the standard library's urllib;
there is no selenium). The Python twin of tests/common/webdriver.rs, with the same
Chromium flags, so the browser tests of both languages see the same browser.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, List, Optional

import pytest

# Where Debian's packages put them (apt-get install chromium chromium-driver).
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def require_chromium() -> None:
    """Skips the test when Chromium or chromedriver is missing, with the reason and the
    fix; fails it instead when LANMESH_REQUIRE_BROWSER=1 (CI)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if not missing:
        return
    what = " and ".join(missing)
    if os.environ.get("LANMESH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"Chromium is required (LANMESH_REQUIRE_BROWSER=1) but {what} is missing")
    pytest.skip(f"{what} not installed (apt-get install chromium chromium-driver)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """A chromedriver with one headless Chromium session; `close()` ends both."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.profile = tempfile.mkdtemp(prefix="lanmesh-chromium-")
        self.session: Optional[str] = None
        try:
            deadline = time.monotonic() + 20
            while not self._ready():
                if self.driver.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("chromedriver did not start")
                time.sleep(0.05)
            args = [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--window-size=1280,900",
                f"--user-data-dir={self.profile}",
            ]
            caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}
            value = self._http("POST", "/session", caps)
            if not isinstance(value, dict) or "sessionId" not in value:
                raise AssertionError(f"no browser session: {value}")
            self.session = value["sessionId"]
        except BaseException:
            self.close()
            raise

    def _http(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                return json.loads(res.read() or b"null").get("value")
        except urllib.error.HTTPError as e:
            # WebDriver errors come as 4xx/5xx with {"value": {"error", "message"}}.
            raise AssertionError(f"WebDriver {method} {path}: {e.read().decode(errors='replace')}") from None

    def _ready(self) -> bool:
        try:
            return bool((self._http("GET", "/status") or {}).get("ready"))
        except (OSError, AssertionError):
            return False

    def _call(self, method: str, what: str, body: Optional[dict] = None) -> Any:
        return self._http(method, f"/session/{self.session}/{what}", body)

    def goto(self, url: str) -> None:
        self._call("POST", "url", {"url": url})

    def run_async(self, script: str, *args: Any) -> Any:
        """Runs an async script: its last argument is the callback that returns the result."""
        return self._call("POST", "execute/async", {"script": script, "args": list(args)})

    def eval(self, script: str, *args: Any) -> Any:
        """Runs a synchronous script (`arguments` are `args`) and returns its value."""
        return self._call("POST", "execute/sync", {"script": script, "args": list(args)})

    def wait_for(self, what: str, script: str, timeout: float = 20.0) -> Any:
        """Polls `script` until it returns something truthy, and returns that."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(script)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        if self.session is not None:
            try:
                self._http("DELETE", f"/session/{self.session}")
            except (OSError, AssertionError):
                pass
            self.session = None
        if self.driver.poll() is None:
            self.driver.kill()
        self.driver.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__: List[str] = ["Browser", "require_chromium", "CHROMIUM", "CHROMEDRIVER"]
