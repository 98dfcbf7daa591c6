"""The pythae side of experiments/vs_pythae.py: its models on its own networks, trained by
its own trainers, and array-in / array-out access for the shared evaluation.

Needs the `pythae` extra (pip install -e '.[pythae]': torch==2.13.0 and pythae==0.1.2).
Training goes through pythae's trainer objects exactly as its TrainingPipeline builds them
(BaseTrainer; for RAE_L2 a CoupledOptimizerTrainer with the decoder's weight decay
reg_weight), epoch by epoch through `trainer.train_step(epoch)`, so the time counted is
pythae's own loop (DataLoader, forward, backward, optimizer steps, `loss.item()` per
batch) without its per-epoch evaluation, best-model copies and saving, which ae_jax's
images/s leaves out too.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch

from pythae import models
from pythae.data.preprocessors import DataProcessor
from pythae.models.nn.benchmarks import mnist
from pythae.samplers import GaussianMixtureSampler, GaussianMixtureSamplerConfig
from pythae.trainers import (BaseTrainer, BaseTrainerConfig, CoupledOptimizerTrainer,
                             CoupledOptimizerTrainerConfig)

MODELS = {  # benchmark name -> (pythae model, its config class, kind of code)
    'vae': (models.VAE, models.VAEConfig, 'vae'),
    'iwae': (models.IWAE, models.IWAEConfig, 'vae'),
    'rae_l2': (models.RAE_L2, models.RAE_L2_Config, 'ae'),
    'vqvae': (models.VQVAE, models.VQVAEConfig, 'vqvae'),
    'beta_vae': (models.BetaVAE, models.BetaVAEConfig, 'vae'),
}


def quiet():
  """pythae's modules log every trainer's setup at INFO to the console; keep warnings."""
  for name in list(logging.root.manager.loggerDict):
    if name.startswith('pythae'):
      logging.getLogger(name).setLevel(logging.WARNING)


def build(model: str, net: str, latent: int, image_shape, **settings):
  """A fresh pythae model: its default MLPs (net 'mlp') or MNIST conv nets ('conv')."""
  h, w, c = image_shape
  cls, config_cls, kind = MODELS[model]
  config = config_cls(input_dim=(c, h, w), latent_dim=latent, **settings)
  if net == 'mlp':
    return cls(config)
  enc = mnist.Encoder_Conv_VAE_MNIST if kind == 'vae' else mnist.Encoder_Conv_AE_MNIST
  return cls(config, encoder=enc(config), decoder=mnist.Decoder_Conv_AE_MNIST(config))


def _nchw(x) -> np.ndarray:
  return np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 3, 1, 2))


def trainer_for(model, train_images, batch: int, lr: float, epochs: int, seed: int,
                out_dir: str):
  """The trainer pythae's TrainingPipeline would build for `model` (train_images NHWC)."""
  dataset = DataProcessor.to_dataset(DataProcessor().process_data(_nchw(train_images)))
  common = dict(output_dir=out_dir, per_device_train_batch_size=batch, num_epochs=epochs,
                seed=seed)
  if model.model_name == 'RAE_L2':  # the pipeline's decoder weight decay; both learning rates
    config = CoupledOptimizerTrainerConfig(
        encoder_learning_rate=lr, decoder_learning_rate=lr,
        decoder_optimizer_params={'weight_decay': model.model_config.reg_weight}, **common)
    return CoupledOptimizerTrainer(model, dataset, training_config=config)
  return BaseTrainer(model, dataset, training_config=BaseTrainerConfig(learning_rate=lr, **common))


def train(model, train_images, batch: int, lr: float, epochs: int, seed: int,
          out_dir: str) -> dict:
  """Train `model` for `epochs`; -> {'epoch_s': [seconds of each epoch's train_step]}."""
  trainer = trainer_for(model, train_images, batch, lr, epochs, seed, out_dir)
  trainer.prepare_training()  # pythae's seed, optimizers, callbacks
  times = []
  for epoch in range(1, epochs + 1):
    t0 = time.perf_counter()
    trainer.train_step(epoch)
    times.append(time.perf_counter() - t0)
  model.eval()
  return {'epoch_s': times}


def timing(epoch_s: list, num_train: int, batch: int, wall: float) -> dict:
  """Training images/s over the epochs after the first (as ae_jax's summary counts them),
  the mean of those epochs, the first epoch's seconds and the run's wall time."""
  later = epoch_s[1:]
  per_epoch = num_train // batch * batch
  return {'images_per_sec': per_epoch * len(later) / sum(later) if later else None,
          'epoch_s': float(np.mean(later)) if later else None, 'first_epoch_s': epoch_s[0],
          'wall_s': wall}


class Side:
  """A trained pythae model behind the evaluation's array interface (NHWC in [0, 1])."""
  library = 'pythae'

  def __init__(self, model, kind: str, batch: int = 500):
    self.model, self.kind, self.batch = model.eval(), kind, batch

  def _batched(self, fn, x):
    outs = [fn(torch.from_numpy(np.ascontiguousarray(x[i:i + self.batch])))
            for i in range(0, len(x), self.batch)]
    return [np.concatenate(parts) for parts in zip(*outs)]

  @torch.no_grad()
  def encode(self, images):
    """-> (code or mean [N, L], log-variance [N, L] or None)."""
    def fn(x):
      out = self.model.encoder(x)
      logvar = out.log_covariance if self.kind == 'vae' else out.embedding
      return out.embedding.numpy(), logvar.numpy()
    mean, logvar = self._batched(fn, _nchw(images))
    return mean, (logvar if self.kind == 'vae' else None)

  def _quantized(self, z):
    """pythae's VQVAE.forward on a flat code: [B, L] -> [B, 1, L, 1] -> its quantiser."""
    q = self.model.quantizer(z.reshape(z.shape[0], 1, 1, -1).permute(0, 2, 3, 1))
    return q.quantized_vector.reshape(z.shape[0], -1), q.quantized_indices.reshape(z.shape[0], -1)

  @torch.no_grad()
  def decode(self, z):
    """Codes [N, L] -> images NHWC in [0, 1] (a VQ-VAE's codes are quantised first)."""
    def fn(z):
      if self.kind == 'vqvae':
        z = self._quantized(z)[0]
      return (self.model.decoder(z).reconstruction.numpy().transpose(0, 2, 3, 1),)
    return self._batched(fn, np.asarray(z, np.float32))[0]

  @torch.no_grad()
  def code_indices(self, z):
    return self._batched(lambda z: (self._quantized(z)[1].numpy(),),
                         np.asarray(z, np.float32))[0]

  def codebook(self) -> np.ndarray:
    return self.model.quantizer.embeddings.weight.detach().numpy()  # [K, 1]

  def gmm_samples(self, train_images, num: int) -> np.ndarray:
    """pythae's own GaussianMixtureSampler (10 full-covariance components on the training
    codes, sklearn's EM), decoded."""
    sampler = GaussianMixtureSampler(self.model, GaussianMixtureSamplerConfig(n_components=10))
    sampler.fit(torch.from_numpy(_nchw(train_images)))
    with torch.no_grad():
      x = sampler.sample(num_samples=num, batch_size=500)
    return x.numpy().transpose(0, 2, 3, 1)


def count_parameters(model) -> int:
  return int(sum(p.numel() for p in model.parameters()))
