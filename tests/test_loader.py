"""The DataLoader path (issue 32, item 4): worker processes gather exactly the batches iterate_batches
indexes - the same slices of the epoch's order, each rank's share, the last batch partial - so a run trained
through it ends with the same weights."""

import pytest
import torch

from reproduce.datasets.batches import iterate_batches
from reproduce.datasets.loader import HostBatches, batch_indices
from reproduce.spec import params
from reproduce.training import train


def _data(rows=203):
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (rows, 3, 8, 8), dtype=torch.uint8, generator=generator), torch.arange(rows)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_host_batches_are_iterate_batches_for_every_epoch_rank_and_the_partial_last(workers, ranks):
    x, y = _data()
    loaders = [HostBatches(x, y, 32, torch.device("cpu"), workers, part=(rank, ranks)) for rank in range(ranks)]
    for epoch in range(3):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        for rank, loader in enumerate(loaders):
            theirs = list(iterate_batches(x, y, 32, device="cpu", order=order, part=(rank, ranks)))
            ours = list(loader.iterate(order))
            assert len(ours) == len(theirs) == 7  # 203 = 6 x 32 + 11
            for (a, b), (c, d) in zip(ours, theirs):
                assert torch.equal(a, c) and torch.equal(b, d)


def test_batch_indices_start_where_a_resumed_epoch_left_off():
    order = torch.randperm(100, generator=torch.Generator().manual_seed(1))
    every = list(batch_indices(order, 16))
    assert [t.tolist() for t in batch_indices(order, 16, start_step=4)] == [t.tolist() for t in every[4:]]
    assert sum(len(t) for t in every) == 100 and len(every[-1]) == 4


def test_a_run_through_loader_workers_ends_with_the_weights_of_one_without(tiny_fashion, tmp_path):
    config = params.resolve({"data_dir": str(tiny_fashion), "epochs": 2, "progress": False, "device": "cpu"},
                            preset="smoke", network="alexnet")
    plain = train.run({**config, "results_dir": str(tmp_path / "a"), "loader_workers": 0})
    workers = train.run({**config, "results_dir": str(tmp_path / "b"), "loader_workers": 2})
    assert plain["totals"]["weights_sha256"] == workers["totals"]["weights_sha256"]
    assert [e["train_loss"] for e in plain["epochs"]] == [e["train_loss"] for e in workers["epochs"]]


def test_gathering_in_workers_draws_nothing_from_the_global_random_stream():
    """Dropout masks come from the global stream: a DataLoader seeding its workers from it would move them."""
    x, y = _data()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    list(HostBatches(x, y, 32, torch.device("cpu"), 2).iterate(torch.arange(len(y))))
    assert torch.equal(torch.rand(3), expected)
