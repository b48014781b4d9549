"""PCA colour lighting (section 4.1, claim C9): the paper's second form of augmentation.

"We perform PCA on the set of RGB pixel values throughout the ImageNet training set. To each
training image, we add multiples of the found principal components, with magnitudes
proportional to the corresponding eigenvalues times a random variable drawn from a Gaussian
with mean zero and standard deviation 0.1": to every pixel of one image presentation,
[p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T, with a_i drawn once per image per presentation.

It needs colour: Fashion-MNIST is greyscale, so there C9 is "not tested here"; CIFAR-10 and
ImageNet-style folders have three channels. Pixels are on the paper's raw 0-255 scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from reproduce.spec.params import ParamError

PAPER_ALPHA_STD = 0.1


def lighting_on(setting: str, channels: int) -> bool:
    """The `lighting` parameter for data with `channels` channels: auto means on for colour only."""
    if setting == "on" and channels != 3:
        raise ParamError(f"lighting: on needs colour images (3 channels), this dataset has {channels}; "
                         "expected auto or off")
    return setting == "on" or (setting == "auto" and channels == 3)


@dataclass(frozen=True)
class ColourPCA:
    eigenvalues: torch.Tensor  # [3], largest first
    eigenvectors: torch.Tensor  # [3, 3], column i is the component of eigenvalues[i]


def fit_colour_pca(images: torch.Tensor, max_pixels: int = 1_000_000, seed: int = 0) -> ColourPCA:
    """Principal components of the RGB values of `images` (uint8 or float, [N, 3, H, W]).

    The covariance is estimated on at most `max_pixels` pixels drawn at random (the paper uses
    all of ImageNet's; a million pixels pin a 3x3 covariance down far below the noise of training).
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"PCA lighting needs colour images [N, 3, H, W], got {tuple(images.shape)}: "
                         "on greyscale data (Fashion-MNIST) claim C9 is not tested here")
    generator = torch.Generator().manual_seed(seed)
    # Draw whole images first: a memory-mapped ImageNet cannot be flattened into one tensor.
    side_pixels = images.shape[2] * images.shape[3]
    wanted_images = min(len(images), math.ceil(max_pixels / side_pixels))
    chosen_images = torch.randperm(len(images), generator=generator)[:wanted_images].sort().values
    pixels = images[chosen_images].permute(1, 0, 2, 3).reshape(3, -1)
    if pixels.shape[1] > max_pixels:
        chosen = torch.randperm(pixels.shape[1], generator=generator)[:max_pixels]
        pixels = pixels[:, chosen]
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(pixels.double()))
    order = eigenvalues.argsort(descending=True)
    return ColourPCA(eigenvalues[order].float(), eigenvectors[:, order].float())


def lighting_shifts(pca: ColourPCA, batch: int, generator: torch.Generator,
                    alpha_std: float = PAPER_ALPHA_STD) -> torch.Tensor:
    """[batch, 3]: one RGB offset per image, sum_i p_i * alpha_i * lambda_i with alpha_i ~ N(0, alpha_std)."""
    alphas = torch.randn(batch, 3, generator=generator, device=generator.device) * alpha_std
    values, vectors = pca.eigenvalues.to(alphas.device), pca.eigenvectors.to(alphas.device)
    return (alphas * values) @ vectors.T


def add_lighting(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """The same offset on every pixel of an image: float [B, 3, H, W] + [B, 3]."""
    return images + shifts[:, :, None, None].to(images.dtype)
