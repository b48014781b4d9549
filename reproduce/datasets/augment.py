"""Batched preprocessing and augmentation on whatever device the batch is on.

The paper's scheme (sec. 2 and 4.1), generalised to any model input size I:
- images are stored at size S as uint8 (256 for ImageNet, 28 for Fashion-MNIST, 32 for CIFAR-10);
- subtract the per-pixel training-set mean at size S (the paper subtracts the mean image);
- resize S -> R, the "canvas", with R = max(I, round(I * 256 / 227)): the paper takes its
  crops from 256x256 images, and 227 is the input size that makes AlexNet's arithmetic work
  (256 for I=227, 36 for I=32, 27 for I=24); a model may fix R instead (d2l's AlexNet resizes the
  whole image to its input, R = I). Bilinear, no antialiasing, skipped when S == R;
- training with augmentation: a random IxI crop and a horizontal flip with probability 0.5,
  drawn independently per image from the caller's generator (reproducible for a seed);
- training without augmentation, and test: the centre IxI crop;
- `ten_crop`: the 4 corner crops and the centre crop, then their horizontal flips (sec. 4.1).
- training with PCA colour lighting (`lighting`, sec. 4.1): one RGB offset per image presentation,
  drawn after the crops and flips from the same generator (reproduce.datasets.lighting).
Values stay on the 0-255 scale minus the mean: the paper trained on raw, centred RGB.
Everything is a whole-batch tensor op: no per-image Python loop, no PIL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reproduce.datasets.lighting import ColourPCA, add_lighting, lighting_shifts

PAPER_STORED_SIZE = 256  # the paper's images: 256x256
PAPER_INPUT_SIZE = 227  # the input size the paper's layer arithmetic needs (224 in its text)


def canvas_size(input_size: int) -> int:
    """The size the stored images are resized to before cropping (256 for AlexNet's 227)."""
    return max(input_size, round(input_size * PAPER_STORED_SIZE / PAPER_INPUT_SIZE))


class BatchTransform:
    def __init__(self, input_size: int, stored_size: int, mean: torch.Tensor, augment: bool,
                 scale: float = 1.0, lighting: ColourPCA | None = None, canvas: int | None = None):
        self.input_size = input_size
        self.stored_size = stored_size
        self.canvas = canvas or canvas_size(input_size)
        self.augment = augment
        self.lighting = lighting  # None: no colour lighting
        if mean.shape[-2:] != (stored_size, stored_size):
            raise ValueError(f"mean image is {tuple(mean.shape)}, expected [C, {stored_size}, {stored_size}]")
        self.mean = mean.float()
        self.scale = float(scale)  # centred values are divided by it: 1 keeps the paper's raw scale
        self._mean_on = {}  # one copy per device: a per-batch transfer would cost more than the crop

    def train(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """uint8 [B, C, S, S] -> float32 [B, C, I, I]: random crop + flip, or the centre crop;
        then the colour lighting, when on."""
        if self.augment:
            canvas = self._centred_canvas(x)
            rows, cols, flips = self._random_views(len(x), generator, x.device)
            views = crop_per_image(canvas, rows, cols, self.input_size, flips)
        else:
            views = self.test(x)
        if self.lighting is None:
            return views
        # The offsets are on the raw 0-255 scale, like the pixels the PCA was fitted on.
        shifts = lighting_shifts(self.lighting, len(x), generator).to(views.device) / self.scale
        return add_lighting(views, shifts)

    def test(self, x: torch.Tensor) -> torch.Tensor:
        """The centre IxI crop of the centred canvas."""
        start = (self.canvas - self.input_size) // 2
        return self._crop(self._centred_canvas(x), start, start)

    def ten_crop(self, x: torch.Tensor) -> torch.Tensor:
        """[10, B, C, I, I]: top-left, top-right, bottom-left, bottom-right, centre, then the
        same five flipped horizontally (view 5 + i is the flip of view i)."""
        canvas = self._centred_canvas(x)
        far, centre = self.canvas - self.input_size, (self.canvas - self.input_size) // 2
        corners = [(0, 0), (0, far), (far, 0), (far, far), (centre, centre)]
        views = [self._crop(canvas, row, col) for row, col in corners]
        views += [view.flip(-1) for view in views]
        return torch.stack(views)

    def canvases(self, images: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Every image's centred canvas, worked out once (what each batch would otherwise redo): the
        same numbers, since the centring and the resize act on each image alone."""
        return torch.cat([self._centred_canvas(images[start:start + chunk]) for start in range(0, len(images), chunk)])

    def _centred_canvas(self, x: torch.Tensor) -> torch.Tensor:
        """float32, minus the training mean at stored size, resized to the canvas; a batch of canvases
        (canvases()) as it is."""
        if x.is_floating_point():
            return x
        centred = x.float() - self._mean_for(x.device)
        if self.scale != 1.0:
            centred = centred / self.scale
        if self.stored_size == self.canvas:
            return centred
        size = (self.canvas, self.canvas)
        return F.interpolate(centred, size=size, mode="bilinear", align_corners=False, antialias=False)

    def _mean_for(self, device: torch.device) -> torch.Tensor:
        if device not in self._mean_on:
            self._mean_on[device] = self.mean.to(device)
        return self._mean_on[device]

    def _crop(self, canvas: torch.Tensor, row: int, col: int) -> torch.Tensor:
        size = self.input_size
        return canvas[:, :, row : row + size, col : col + size].contiguous()

    def _random_views(self, batch: int, generator: torch.Generator, device: torch.device):
        """Per-image crop offsets and flip flags, drawn on the generator's own device."""
        span = self.canvas - self.input_size + 1
        rows = torch.randint(span, (batch,), generator=generator, device=generator.device)
        cols = torch.randint(span, (batch,), generator=generator, device=generator.device)
        flips = torch.randint(2, (batch,), generator=generator, device=generator.device).bool()
        return rows.to(device), cols.to(device), flips.to(device)


def crop_per_image(
    canvas: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int, flips: torch.Tensor
) -> torch.Tensor:
    """Crop image b of [B, C, R, R] at (rows[b], cols[b]), mirrored where flips[b].

    Two torch.gather passes, rows then columns (about twice as fast on CPU as one 4-D
    advanced-indexing gather). The flip is folded into the column index (read the crop
    right to left), so it costs nothing extra.
    """
    batch, channels, width, _ = canvas.shape
    steps = torch.arange(size, device=canvas.device)
    row_index = (rows[:, None] + steps)[:, None, :, None]  # [B, 1, I, 1]
    picked_rows = torch.gather(canvas, 2, row_index.expand(batch, channels, size, width))
    col_steps = torch.where(flips[:, None], size - 1 - steps, steps)
    col_index = (cols[:, None] + col_steps)[:, None, None, :]  # [B, 1, 1, I]
    return torch.gather(picked_rows, 3, col_index.expand(batch, channels, size, size))
