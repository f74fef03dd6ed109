#!/usr/bin/env bash
# Install the external MQTT brokers the load tests use (Mosquitto, NATS), and
# nghttp2's HTTP/2 clients, from Debian's packages, only when missing. Idempotent;
# needs root (CI runs as root). Tests that need one of these binaries skip with a
# reason when it is still absent.
set -u
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
# nghttp and h2load: the APNs look-alike's HTTP/2 tests drive it with nghttp2's clients
{ command -v nghttp >/dev/null 2>&1 && command -v h2load >/dev/null 2>&1; } || need+=(nghttp2-client)
# curl: the docs' commands use it against the look-alikes (tests/test_docs.py)
command -v curl >/dev/null 2>&1 || need+=(curl)
# node and npm: the Web Push tests send with the npm web-push library (tests/node)
{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || need+=(nodejs npm)
# Firefox ESR: a real browser as a Web Push device, headless (tests/test_webpush_firefox.py)
command -v firefox-esr >/dev/null 2>&1 || command -v firefox >/dev/null 2>&1 || need+=(firefox-esr)
# Chromium: opens the dashboard served with --web, headless (tests/test_dashboard_web.py)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install-brokers: ${need[*]} missing and not root; broker tests will skip" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-brokers: no apt-get; broker tests will skip" >&2
    exit 0
fi
echo "install-brokers: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y --no-install-recommends "${need[@]}" >/dev/null || \
        echo "install-brokers: apt-get install failed; broker tests will skip" >&2
fi
# The Debian package may start a system service; the tests start their own brokers.
for svc in mosquitto nats-server; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" >/dev/null 2>&1 || true
    fi
done
exit 0
