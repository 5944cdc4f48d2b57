"""Real Chromium for the browser tests: where it is, the flags it runs with here, and a live server
that offers WebRTC on loopback."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from testsupport.live_server import start_live_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed (scripts/test.sh installs Debian's chromium; it could not here)",
)

# No sandbox as root; no background traffic on a machine without internet; WebRTC: loopback
# candidates, and plain addresses rather than mDNS names (resolving those would send multicast
# queries onto the network); sound without a click.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
                 "--autoplay-policy=no-user-gesture-required"]


@contextlib.contextmanager
def chromium(extra_args: list[str] | None = None):
    """A launched Chromium (Playwright), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + (extra_args or []))
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def webrtc_live_server(folder: Path):
    """A live server whose WebRTC media stays on loopback (its candidates; Chromium's are allowed
    loopback by CHROMIUM_ARGS)."""
    live = start_live_server(folder, extra_env={"SESSION_WEBRTC_HOST_ADDRESSES": "127.0.0.1"})
    try:
        yield live
    finally:
        live.stop()
