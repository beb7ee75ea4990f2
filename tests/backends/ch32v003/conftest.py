"""Builds the C fixtures once per session; skips when the cross compiler is absent."""

import shutil
from pathlib import Path

import pytest

from tinycc_nn.backends.ch32v003 import toolchain

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """`build("ternary/model.c", **build_firmware_kwargs) -> Path` of the ELF, cached.

    The include directory is the source's own folder, which holds its model.h.
    """
    if shutil.which(toolchain.GCC) is None:
        pytest.skip(f"{toolchain.GCC} not installed (Debian package {toolchain.DEBIAN_PACKAGE})")
    cache = {}

    def build_fixture(source: str, **kwargs) -> Path:
        key = (source, repr(sorted(kwargs.items())))
        if key not in cache:
            path = FIXTURES / source
            out = tmp_path_factory.mktemp(f"{path.parent.name}_{path.stem}")
            cache[key] = toolchain.build_firmware([path], [path.parent], out, **kwargs)
        return cache[key]

    return build_fixture
