import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))   # helpers such as qdq.py


@pytest.fixture
def rng():
    import numpy as np
    return np.random.default_rng(12345)
