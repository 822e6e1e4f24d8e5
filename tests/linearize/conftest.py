"""One intra-op thread for the tiny-model training tests.

The tiny models run thousands of microsecond-sized kernels; with several threads each one
pays a synchronisation cost, and on a shared 2-core machine a busy neighbour turns that into
10x slower tests. Restored afterwards so other test packages keep their settings.
"""

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
