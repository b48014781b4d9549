"""The networks: the paper's AlexNet and its variants, a small member for 32 px, d2l's, the cuda-convnet
CIFAR-10 nets, their layers (grouped LRN), and the one builder that reads the model's parameters."""
