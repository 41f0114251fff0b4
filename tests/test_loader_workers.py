"""DataLoader workers hand batches back without waiting on a helper thread in the worker (the stall once
seen in test_resume_after_sigkill_mid_epoch_is_bit_exact: the main process blocked for good in
rebuild_storage_fd -> DupFd.detach -> resource_sharer Client, its worker idle with no sharer thread)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from avssl_core.train.workers import start_dataloader_worker, worker_start_method

REPO = Path(__file__).resolve().parents[1]


class Ramps(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.arange(16, dtype=torch.float32) + i


def leave_resource_sharer_unserved() -> None:
    """Put this worker's resource sharer in the state the stall showed: a listening socket with no thread
    serving it (what a fork of a process with a running sharer copies when the after-fork reset is
    skipped). A batch passed by file descriptor then waits forever for the handshake."""
    from multiprocessing import process, resource_sharer
    from multiprocessing.connection import Listener

    sharer = resource_sharer._resource_sharer
    sharer._listener = Listener(authkey=process.current_process().authkey)
    sharer._address = sharer._listener.address


def worker_with_unserved_sharer(worker_id: int) -> None:
    leave_resource_sharer_unserved()
    start_dataloader_worker(worker_id)


def batches(worker_init_fn) -> list[torch.Tensor]:
    loader = DataLoader(Ramps(), batch_size=2, num_workers=1, worker_init_fn=worker_init_fn,
                        multiprocessing_context=worker_start_method(1))
    return list(loader)


@pytest.mark.timeout(60)
def test_batches_arrive_although_the_workers_resource_sharer_is_dead():
    got = batches(worker_with_unserved_sharer)
    assert torch.equal(torch.cat(got), torch.stack([Ramps()[i] for i in range(6)]))


@pytest.mark.timeout(60)
def test_the_default_fd_sharing_stalls_in_that_state():
    # The control: the same worker with torch's default file_descriptor sharing (only the seeding of the
    # old worker_init_fn) blocks the main process; run in a child that is stopped after 6 s.
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from test_loader_workers import batches, leave_resource_sharer_unserved
        from avssl_core.train.seeding import seed_dataloader_worker
        def old_init(worker_id):
            leave_resource_sharer_unserved()
            seed_dataloader_worker(worker_id)
        if __name__ == "__main__":
            batches(old_init)
            print("delivered")
    """)
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], cwd=REPO, timeout=6,
                       capture_output=True)
