"""The device helpers' thread policy: small decompositions run in one math thread."""

import torch

from safelora_lite.device import one_thread_if_small, single_thread


def test_small_decompositions_run_in_one_thread_and_the_count_comes_back():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread_if_small(torch.empty(576, 576)):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with one_thread_if_small(torch.empty(4096, 4096, device="meta")):  # a 7B module: every thread
            assert torch.get_num_threads() == 2
        with single_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
