"""Headless Chromium driven over the DevTools protocol (CDP), for looking at reports.

Chromium is started with remote debugging on a kernel-chosen port (it writes the port to
DevToolsActivePort in its profile folder); one page is driven over a websocket
(websocket-client). Console errors, uncaught exceptions and failed loads are collected
while a page loads, so a test can assert there were none.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import websocket

from tests.support import require_tool, wait_until

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


@dataclass
class PageLoad:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads


class Browser:
    def __init__(self, profile_dir: Path) -> None:
        chromium = require_tool("chromium", "apt-get install -y chromium (in .ci/run's apt line)")
        self.profile_dir = profile_dir
        self.log = (profile_dir.parent / "chromium.log").open("wb")
        self.proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        port_file = profile_dir / "DevToolsActivePort"
        port = wait_until(
            lambda: port_file.is_file() and port_file.read_text().split("\n")[0].strip(),
            "chromium's DevToolsActivePort",
            timeout=60,
        )
        base = f"http://127.0.0.1:{port}"
        pages = wait_until(
            lambda: [
                t
                for t in requests.get(f"{base}/json/list", timeout=5).json()
                if t["type"] == "page"
            ],
            "a chromium page target",
            timeout=30,
        )
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30)
        self._ids = itertools.count(1)
        self._events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params) -> dict:
        """Send one command; keep the events that arrive before its answer."""
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._events.append(message)

    def _wait_event(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout}s")
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self._events.append(json.loads(self.ws.recv()))

    def open(self, url: str, timeout: float = 30) -> PageLoad:
        self._events.clear()
        self.call("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired", timeout)
        # Anything logged right after load (a late image decode error) arrives here.
        self.call(
            "Runtime.evaluate", expression="new Promise(r => setTimeout(r, 300))", awaitPromise=True
        )
        return PageLoad(errors=self._errors())

    def _errors(self) -> list[str]:
        errors = []
        for event in self._events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append("console: " + " ".join(str(a.get("value")) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                errors.append("exception: " + params["exceptionDetails"].get("text", ""))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append("log: " + params["entry"]["text"])
            elif method == "Network.loadingFailed":
                errors.append("load failed: " + params.get("errorText", ""))
        return errors

    def requested_urls(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self._events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int = 1100) -> Path:
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
