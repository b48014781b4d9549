"""A rerunnable reproduction of AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012).

The package's folders are its layers, in the order data flows; a module reads only the layers below its own
(tests/test_layers.py derives each module's layer from its folder and checks every import, lazy ones too):

- base/      file locks, git, where the project is: nothing of the paper
- spec/      the declarations: every parameter and preset, the claims registry, the runs each claim needs,
             run ids, the registered design
- records/   run records on disk, their states, the code that made them (provenance), code changes declared
             numerically equivalent
- nets/      the paper's network and its variants, the four-layer CIFAR-10 nets
- datasets/  Fashion-MNIST, CIFAR-10, ImageNet-style folders; augmentation and colour lighting on the device
- training/  the loop (train.py: one epoch, a step, checkpoints, resume), how it executes on a device, ranks
- runs/      one run safely (lock, reuse, stale records set aside), measures of final weights, the runs index
- grids/     a preset's runs trained by worker processes or submitit jobs, to a time budget
- tools/     the bench against the seeds' d2l loop, packing a GPU loan's results, the equivalence check:
             they measure and pack, and the report reads what they write
- verdicts/  the claims decided from the records: statistics, Holm's family, wording, the pilot
- report/    the notebooks' calls, the figures and the book's pages
- cli.py     `python -m reproduce ...`: the driver, above every layer

The training code - whose digest a record carries, so that a record made by other code is stale - is
nets/, datasets/ and training/ (reproduce.records.provenance.TRAINING_LAYERS).
"""

LAYERS = ("base", "spec", "records", "nets", "datasets", "training", "runs", "grids", "tools", "verdicts", "report")
