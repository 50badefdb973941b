#!/usr/bin/env bash
# The browser of the dashboard's browser test (tests/e2e/test_dashboard_browser.py): Debian's
# headless-capable Chromium and its WebDriver, from the distribution's archive, so no test
# downloads a browser build of its own. Idempotent: does nothing when both are installed.
# Needs root (CI runs as root); elsewhere it says what to run and leaves the test to skip.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_browser: not root; run: sudo apt-get install -y chromium chromium-driver" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "install_browser: $(chromium --version)"
