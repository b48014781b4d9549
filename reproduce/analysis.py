"""Measures of a finished run's final weights: 10-crop test error (C8), first-layer kernels and the
towers' colour statistic (C16, Figure 3), nearest neighbours in the last hidden layer (C17, Figure 4).

They are computed after training, from the run's last checkpoint, whose weights must have the digest
its record holds, and written to results/analysis/<run_id>.json. That file names the digests of the
weights and of this code: a measure is never read from other weights or from other analysis code.
"""

from __future__ import annotations

MEASURES = {
    "centre_test_top1_error": "top-1 test error on the centre crop",
    "ten_crop_test_top1_error": "top-1 test error of the softmax averaged over the 10 crops",
    "feature_neighbour_disagreement": "share of the 5 nearest test images (last hidden layer) with another label",
    "pixel_neighbour_disagreement": "share of the 5 nearest test images (pixels) with another label",
    "tower_colour_gap": "gap between the two towers' mean colour share of conv1's kernels",
    "random_split_colour_gap": "the same gap for random halves of conv1's kernels (chance)",
}
