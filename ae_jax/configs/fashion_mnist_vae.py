"""Convolutional VAE on Fashion-MNIST, read from its four IDX files (28x28 gray, the
published 60,000 train / 10,000 test split, 10 classes).

  apt-get install dataset-fashion-mnist
  python -m ae_jax.main --config configs/fashion_mnist_vae.py --workdir runs/fashion_mnist_vae

The Debian package installs the files in /usr/share/datasets/fashion-mnist/; any folder of
the four files (gzipped or not), or a torchvision root holding FashionMNIST/raw/, works with
--config.data.path=DIR. Latent 16, batch 100 and Adam at 1e-3 are pythae's benchmark
settings. Sample FD and precision/recall are scored in a Fashion-MNIST classifier's
feature space, trained once from the files' training split and cached (docs/metrics.md).
"""
from ae_jax.configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'idx'
  config.data.path = '/usr/share/datasets/fashion-mnist'
  config.model.kind = 'vae'
  config.model.arch = 'conv'
  config.model.conv.channels = (32, 64)  # 28 -> 14 -> 7
  config.model.latent_dim = 16
  config.loss.reconstruction = 'bce'  # pixel intensities in [0, 1] as Bernoulli means
  config.loss.beta = 1.0  # times the KL; the BCE is summed over pixels (loss.reduction)
  config.train.batch_size = 100
  config.train.learning_rate = 1e-3  # Adam (optim.name)
  config.train.num_epochs = 20
  config.train.eval_every = 5
  config.checkpoint.every_epochs = 5
  config.eval.metrics = ('default', 'fd_classifier', 'precision', 'recall')
  # the end-of-run pass metrics (LPIPS, the PCA baseline, sample FD) on 1,000 of the
  # 10,000 test images: LPIPS-VGG on all of them would take the better part of an hour on
  # a CPU; FD compares them with eval.num_samples = 1,000 prior samples
  config.eval.max_images = 1000
  return config
