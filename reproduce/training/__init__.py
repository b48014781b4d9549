"""The training loop (train), its checkpoints, how it executes on a device (precision, compile, layout),
torchrun's ranks. Its code, with nets/ and datasets/, is the training code a record's digest names."""
