"""The seeds' d2l training loop (../shared/seeds/001 and 003), rebuilt as the speed baseline.

What users of d2l and of the seed notes run: torchvision's FashionMNIST with a per-image
`Resize` + `ToTensor` in a DataLoader (4 workers, shuffled), the model in eager fp32 and
NCHW, and a loop that copies each batch to the device and reads the loss and the number
of correct predictions back with `.cpu().item()` after every step.

Only two things differ from the seed code, both to make it the *same* experiment as the
trainer's: the optimiser is the paper's SGD (seed 001 uses Adam; d2l's train_ch6 uses SGD),
and the model is the project's network built with torch's stock layers, so the only LRN
is nn.LocalResponseNorm, as a d2l user would write it.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from reproduce.datasets.data import load_dataset
from reproduce.nets.layers import GroupedLRN
from reproduce.nets.models import build_model, input_size

D2L_WORKERS = 4  # load_data_fashion_mnist: 4 workers off Windows


class StockGroupedLRN(nn.Module):
    """The same function as GroupedLRN (each tower normalised on its own), through nn.LocalResponseNorm."""

    def __init__(self, lrn: GroupedLRN):
        super().__init__()
        self.groups = lrn.groups
        self.lrn = nn.LocalResponseNorm(lrn.size, lrn.alpha, lrn.beta, lrn.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return self.lrn(x.reshape(n * self.groups, c // self.groups, h, w)).reshape(n, c, h, w)


def stock_model(config: dict[str, Any]) -> nn.Module:
    """The project's network for `config`, its LRN layers swapped for torch's own."""
    model = build_model(config)
    for name, module in list(model.named_children()):
        if isinstance(module, GroupedLRN):
            setattr(model, name, StockGroupedLRN(module))
    return model


def fashion_mnist_loader(data_dir: str, side: int, batch_size: int) -> DataLoader:
    """d2l.load_data_fashion_mnist(batch_size, resize=side): PIL resize and ToTensor per image."""
    load_dataset("fashion-mnist", data_dir, train_limit=1)  # puts the raw files where torchvision looks
    transform = transforms.Compose([transforms.Resize(side), transforms.ToTensor()])
    dataset = FashionMNIST(data_dir, train=True, download=False, transform=transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=D2L_WORKERS)


class D2LLoop:
    """d2l's train_ch6 inner loop, one batch per `step()`, its host syncs included."""

    def __init__(self, config: dict[str, Any], device: torch.device):
        torch.manual_seed(config["seed"])
        self.device = device
        # Fashion-MNIST: one channel, ten classes.
        self.net = stock_model({**config, "in_channels": 1, "num_classes": len(FashionMNIST.classes)}).to(device)
        self.loss = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=config["lr"], momentum=config["momentum"],
                                         weight_decay=config["weight_decay"])
        self.batches = self._endless(fashion_mnist_loader(config["data_dir"], input_size(config["model"]),
                                                          config["batch_size"]))
        self.train_l_sum = self.train_acc_sum = 0.0
        self.n = 0

    @staticmethod
    def _endless(loader: DataLoader) -> Iterator:
        while True:
            yield from loader

    def step(self) -> None:
        X, y = next(self.batches)
        X, y = X.to(self.device), y.to(self.device)
        y_hat = self.net(X)
        l = self.loss(y_hat, y)
        self.optimizer.zero_grad()
        l.backward()
        self.optimizer.step()
        self.train_l_sum += l.cpu().item()
        self.train_acc_sum += (y_hat.argmax(dim=1) == y).sum().cpu().item()
        self.n += y.shape[0]
