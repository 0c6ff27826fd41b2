#!/usr/bin/env bash
# Installs what the test suites need that cargo does not: kcat, Go with Sarama, and C build tools
# (apt), the Python clients (pip) and kafkajs (npm). Idempotent: a machine that has them skips each step.
# `make test` runs it first; it needs root (or sudo) only when an apt package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# A Debian system Python refuses global installs (PEP 668); allow it. Ignored where it does not apply.
export PIP_BREAK_SYSTEM_PACKAGES=1

T0=$SECONDS
step() { echo "=== $* [t+$((SECONDS - T0))s]"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# --- Debian packages -------------------------------------------------------
# kcat: CLI client under test. cmake + build-essential + pkg-config + zlib1g-dev +
# libcurl4-openssl-dev: rdkafka-sys builds librdkafka 2.12 from source (zstd is vendored by
# zstd-sys; no SSL/SASL features are enabled, but librdkafka 2.12's rdkafka_conf.c includes
# <curl/curl.h> even with WITH_CURL=0, so a machine without the curl headers cannot build it).
# openssl: the CLI makes the TLS tests' certificates (compat-tests/tls/make-certs.sh).
# golang-go + golang-github-shopify-sarama-dev: the Sarama client (Go) and its dependencies as
# Debian packages it, built in GOPATH mode (no Go module proxy is needed).
APT_PKGS=(kcat openssl cmake build-essential pkg-config zlib1g-dev libcurl4-openssl-dev golang-go golang-github-shopify-sarama-dev)
missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
step "apt: ${missing[*]:-nothing to install}"
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python clients ----------------------------------------------------------
step "pip install -r compat-tests/python/requirements.txt (pinned; a no-op when satisfied)"
python3 -m pip install -q -r compat-tests/python/requirements.txt

# --- Node clients --------------------------------------------------------------
if [ -d compat-tests/js/node_modules/kafkajs ]; then
  step "npm: kafkajs already installed"
else
  step "npm ci (compat-tests/js)"
  (cd compat-tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- Toolchain report ----------------------------------------------------------
step "versions"
cargo --version; python3 --version; node --version; go version; kcat -V 2>&1 | sed -n '4p' || true

