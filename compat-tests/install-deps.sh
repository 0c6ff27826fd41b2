#!/usr/bin/env bash
# Installs what the test suites need that cargo does not: kcat and C build tools (apt), a JDK and
# Maven (apt) when `java` or `mvn` is missing, the Python clients (pip), kafkajs (npm), the Go
# clients' modules (Sarama, franz-go: `go mod download`) and the Java suite's Maven dependencies
# (kafka-clients, JUnit). Idempotent: a machine that has them skips each step.
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
# nftables: the replication tests cut links between cluster nodes (tests/replication.rs; root).
# Go itself is not installed from apt: Debian 12's golang-go (1.19) cannot build the Go module
# (compat-tests/go/go.mod), and CI machines have a current Go (see the Go step below).
APT_PKGS=(kcat openssl cmake build-essential pkg-config zlib1g-dev libcurl4-openssl-dev nftables)
# openjdk-17-jdk-headless + maven: the Java client suite (compat-tests/java), only when the machine
# has no java or mvn of its own (a JDK installed some other way is used as it is).
if ! command -v java >/dev/null 2>&1; then APT_PKGS+=(openjdk-17-jdk-headless); fi
if ! command -v mvn >/dev/null 2>&1; then APT_PKGS+=(maven); fi
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

# --- Go clients ----------------------------------------------------------------
# The first Go 1.21+ ($GO, PATH, /usr/local/go) downloads the modules go.sum pins through the Go
# module proxy (and the toolchain go.mod asks for, if it is older: GOTOOLCHAIN=auto). Without one
# the Go tests fail and say why; the other suites still run.
GO_BIN=""
for g in "${GO:-}" "$(command -v go || true)" /usr/local/go/bin/go; do
  if [ -n "$g" ] && [ -x "$g" ] && "$g" env GOVERSION 2>/dev/null | grep -qE '^go(1\.(2[1-9]|[3-9][0-9])|[2-9])'; then
    GO_BIN=$g
    break
  fi
done
if [ -n "$GO_BIN" ]; then
  step "go mod download (compat-tests/go, $("$GO_BIN" env GOVERSION))"
  (cd compat-tests/go && "$GO_BIN" mod download)
else
  step "Go: no Go 1.21 or newer found; the Go client tests (python/test_go.py, test_cluster.py) will fail"
fi

# --- Java client -----------------------------------------------------------------
# Resolves the plugins and dependencies into the local Maven repository (~/.m2), so the tests run
# offline afterwards; quick when they are there already.
step "mvn dependency:go-offline (compat-tests/java)"
(cd compat-tests/java && mvn -B -q --no-transfer-progress -Dstyle.color=never dependency:go-offline)

# --- Toolchain report ----------------------------------------------------------
step "versions"
cargo --version; python3 --version; node --version; ${GO_BIN:-go} version || true; kcat -V 2>&1 | sed -n '4p' || true
java -version 2>&1 | sed -n 1p; mvn -v -Dstyle.color=never 2>&1 | sed -n 1p

