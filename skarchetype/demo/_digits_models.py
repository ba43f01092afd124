"""Small networks for the 8x8 digits of scikit-learn, trained from scratch in seconds on a CPU.

A CNN (layers ``"conv1"``, ``"conv2"``, ``"conv3"``, ``"head"``) and a tiny vision
transformer (layers ``"patch_embedding"``, ``"blocks.0"`` ... ``"blocks.N"``, ``"norm"``,
``"head"``): stand-ins for a user's trained network in the examples and the demo.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.utils import check_random_state
from torch import nn

from .._torch import as_tensor, batch_slices, evaluation_mode, resolve_device


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits of :func:`sklearn.datasets.load_digits` as images for a network.

    Returns
    -------
    images : ndarray of shape (1797, 1, 8, 8), float32
        Grey levels scaled to [0, 1].
    labels : ndarray of shape (1797,), int64
        The digit, 0 to 9.
    """
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    return images, digits.target.astype(np.int64)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU())


class DigitsCNN(nn.Module):
    """Three conv blocks (conv + ReLU) and a linear head on globally pooled maps.

    ``conv1`` and ``conv2`` see 8x8 maps, ``conv3`` 4x4 maps after a 2x2 max pool.

    Parameters
    ----------
    width : int, default=12
        Channels of ``conv1``; ``conv2`` and ``conv3`` have twice and four times as many.
    n_classes : int, default=10
    """

    def __init__(self, width: int = 12, n_classes: int = 10):
        super().__init__()
        self.conv1 = _conv_block(1, width)
        self.conv2 = _conv_block(width, 2 * width)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = _conv_block(2 * width, 4 * width)
        self.head = nn.Linear(4 * width, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.conv3(self.pool(self.conv2(self.conv1(images))))
        return self.head(maps.mean(dim=(2, 3)))


class DigitsViT(nn.Module):
    """A tiny vision transformer: 2x2 patches, a CLS token, pre-norm encoder blocks.

    Parameters
    ----------
    dim : int, default=32
        Token width.
    depth : int, default=3
        Encoder blocks, ``blocks.0`` to ``blocks.{depth - 1}``; each returns (n, 17, dim).
    n_heads : int, default=4
    patch_size : int, default=2
    n_classes : int, default=10
    """

    def __init__(
        self,
        dim: int = 32,
        depth: int = 3,
        n_heads: int = 4,
        patch_size: int = 2,
        n_classes: int = 10,
    ):
        super().__init__()
        n_patches = (8 // patch_size) ** 2
        self.patch_embedding = nn.Conv2d(1, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position_embedding = nn.Parameter(0.02 * torch.randn(1, n_patches + 1, dim))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, n_heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True,
                norm_first=True,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(images).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(len(patches), -1, -1)
        tokens = torch.cat([cls, patches], dim=1) + self.position_embedding
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens)[:, 0])


def train_classifier(
    model: nn.Module,
    X,
    y,
    *,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 3e-3,
    random_state=None,
    device="auto",
    verbose: int = 0,
) -> nn.Module:
    """Train ``model`` with Adam and cross-entropy; it is left in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of ``X`` to class logits.
    X : ndarray or Tensor of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
        Integer classes ``0 ... n_classes - 1``.
    epochs : int, default=20
    batch_size : int, default=64
    lr : float, default=3e-3
    random_state : int, RandomState instance or None, default=None
        Seeds the order of the mini-batches.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        The model is moved there.
    verbose : int, default=0
        Print the mean loss and training accuracy after each epoch when positive.

    Returns
    -------
    model : torch.nn.Module
        The same module, trained.
    """
    device = resolve_device(device)
    model.to(device)
    inputs = as_tensor(X, device, torch.float32)
    targets = torch.as_tensor(np.asarray(y), dtype=torch.long, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng = check_random_state(random_state)
    model.train()
    for epoch in range(epochs):
        order = torch.as_tensor(rng.permutation(len(inputs)), device=device)
        total_loss = 0.0
        for rows in batch_slices(len(inputs), batch_size):
            batch = order[rows]
            loss = nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
        if verbose:
            accuracy = classifier_accuracy(model, inputs, targets, batch_size=4 * batch_size)
            print(
                f"[skarchetype] {type(model).__name__} epoch {epoch + 1}/{epochs}: "
                f"loss {total_loss / len(inputs):.4f}, training accuracy {accuracy:.3f}"
            )
    return model.eval()


def classifier_accuracy(model: nn.Module, X, y, *, batch_size: int = 256) -> float:
    """Fraction of samples whose largest logit is their class (eval mode, no gradients)."""
    device = next(model.parameters()).device
    inputs = as_tensor(X, device, torch.float32)
    targets = torch.as_tensor(np.asarray(y), device=device)
    correct = 0
    with evaluation_mode(model), torch.inference_mode():
        for rows in batch_slices(len(inputs), batch_size):
            correct += (model(inputs[rows]).argmax(dim=1) == targets[rows]).sum().item()
    return correct / len(inputs)
