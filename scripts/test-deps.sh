#!/usr/bin/env bash
# System packages some tests need beyond the Python ones: Debian's chromium (browser e2e test),
# prometheus (promtool checks), tmux (the `watch` TUI test), and the `peerjs` npm package.
# Idempotent and quick when all are present; what cannot be installed (no root, no network) is
# said here, and the tests that need it skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
command -v tmux >/dev/null || missing+=(tmux)

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test-deps: installing ${missing[*]} (Debian packages)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null; } \
            || echo "test-deps: could not install ${missing[*]}; the tests that need them will be skipped" >&2
    else
        echo "test-deps: ${missing[*]} missing and apt-get unavailable (need root); those tests will be skipped" >&2
    fi
fi

if [ ! -f tests/e2e/node_modules/peerjs/package.json ]; then
    if command -v npm >/dev/null; then
        echo "test-deps: installing the peerjs npm package into tests/e2e/node_modules"
        (cd tests/e2e && npm install --no-audit --no-fund --silent) \
            || echo "test-deps: npm install failed; the browser e2e test will be skipped" >&2
    else
        echo "test-deps: npm missing; the browser e2e test will be skipped" >&2
    fi
fi
exit 0
