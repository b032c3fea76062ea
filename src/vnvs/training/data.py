"""Resumable batches of a :class:`~vnvs.data.dataset.ShardDataset` for one training process.

The dataset fixes the global order of an epoch (seeded shuffle and kind mixing) and the strided
slice of each DDP rank. Here a rank's slice is cut into consecutive batches of ``batch_size`` (the
incomplete tail is dropped so that every rank runs the same number of steps) and loaded by one
map-style DataLoader whose batch sampler lists exactly those positions, epoch after epoch. So a batch
depends only on ``(seed, epoch, batch index, rank, world size)`` -- not on the number of workers --
and a resumed run starts at any batch of an epoch without reading the batches before it.
"""

from __future__ import annotations

from typing import Any, Iterator

from torch.utils.data import DataLoader, Dataset

from vnvs.data.dataset import ShardDataset, collate


def rank_positions(dataset: ShardDataset, epoch: int, rank: int, world_size: int) -> list[int]:
    """Positions (into ``dataset.samples``) a rank reads in an epoch: the dataset's order, its tail
    dropped to a multiple of ``world_size``, strided by rank (as ``ShardDataset(drop_last=True)``)."""
    order = dataset.order(epoch)
    order = order[: len(order) // world_size * world_size]
    return order[rank::world_size]


class _ByPosition(Dataset):
    """Map-style view: item ``p`` is ``dataset.load(p)`` plus its ``position``."""

    def __init__(self, dataset: ShardDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset.samples)

    def __getitem__(self, position: int) -> dict[str, Any]:
        item = self.dataset.load(position)
        item["position"] = position
        return item


class EpochBatches:
    """Batches of one rank, epoch after epoch, starting at any batch.

    Args:
        dataset: the prepared data (its ``seed``, ``weights`` and ``epoch_size`` fix the order).
        batch_size: samples per batch on this rank.
        rank, world_size: this process's DDP position.
        num_workers: DataLoader worker processes (kept for the whole run).
        pin_memory: pin host memory (CUDA).
    """

    def __init__(self, dataset: ShardDataset, batch_size: int, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0, pin_memory: bool = False):
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.num_workers, self.pin_memory = int(num_workers), pin_memory

    def batches_per_epoch(self, epoch: int = 0) -> int:
        return len(rank_positions(self.dataset, epoch, self.rank, self.world_size)) // self.batch_size

    def plan(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[int, int, list[int]]]:
        """Endless ``(epoch, batch_index, positions)`` from batch ``start`` of ``epoch`` on."""
        B = self.batch_size
        while True:
            positions = rank_positions(self.dataset, epoch, self.rank, self.world_size)
            count = len(positions) // B
            if count == 0:
                raise ValueError(f"epoch {epoch} has {len(positions)} samples for this rank, fewer than a batch of {B}")
            for index in range(start, count):
                yield epoch, index, positions[index * B:(index + 1) * B]
            epoch, start = epoch + 1, 0

    def __call__(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """Endless ``(epoch, batch_index, batch)``; ``batch`` is :func:`~vnvs.data.dataset.collate`-d
        and has ``position``, the list of sample positions it holds."""
        labels = self.plan(epoch, start)
        sampler = (positions for _, _, positions in self.plan(epoch, start))
        loader = DataLoader(_ByPosition(self.dataset), batch_sampler=sampler, num_workers=self.num_workers,
                            collate_fn=collate, pin_memory=self.pin_memory)
        for (e, i, _), batch in zip(labels, loader):
            yield e, i, batch
