"""Dataset loaders and download scripts for the CNN examples (MNIST, CIFAR-10, CIFAR-100)."""
