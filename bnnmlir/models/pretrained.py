def fashion_mnist_samples(): pass
def pretrained_fashion_mnist_bnn_clip(): pass
