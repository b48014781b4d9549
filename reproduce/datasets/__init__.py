"""The data: Fashion-MNIST, CIFAR-10 and ImageNet-style folders as uint8 tensors, batches on the device,
the paper's crops, flips and PCA colour lighting."""
