"""The preset architectures written in PyTorch, as users train them today.

Reference modules for weight-import tests and the speed comparison. Needs the optional
`torch` extra (pinned torch==2.13.0). `build(preset, image_shape, latent_dim)` returns a
module whose forward takes NCHW images in the range the original code used ([0, 1] for
sigmoid models, [-1, 1] for tanh models) and returns the reconstruction (and, for VAEs,
mean and the variance head's output).
"""
from __future__ import annotations


import torch
from torch import nn


class MLPAE(nn.Module):
  """An MLP AE; `refine` adds that many image-size Linear + ReLU layers before the
  decoder's output layer (report 000's sharpness fix)."""

  def __init__(self, dims, out_act, code_act=True, refine=0):
    super().__init__()
    enc = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
      enc.append(nn.Linear(a, b))
      if i < len(dims) - 2 or code_act:
        enc.append(nn.ReLU())
    dec = []
    rev = dims[::-1]
    for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
      dec.append(nn.Linear(a, b))
      dec.append(nn.ReLU() if i < len(rev) - 2 else out_act)
    for _ in range(refine):  # before the output activation: Linear(P, P), ReLU, ..., out_act
      dec.insert(len(dec) - 1, nn.ReLU())
      dec.insert(len(dec) - 1, nn.Linear(dims[0], dims[0]))
    self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

  def forward(self, x):
    return self.decoder(self.encoder(x.flatten(1))).view_as(x)


class MLPVAE(nn.Module):
  """The 50x50 MLP VAE: its `variance` head is log(sigma) (it samples m + e * exp(v))."""

  def __init__(self, d_in=7500, hidden=(4096, 1024, 512), latent=256):
    super().__init__()
    dims = (d_in, *hidden)
    enc = []
    for a, b in zip(dims[:-1], dims[1:]):
      enc += [nn.Linear(a, b), nn.ReLU()]
    self.encoder = nn.Sequential(*enc)
    self.mean = nn.Linear(hidden[-1], latent)
    self.variance = nn.Linear(hidden[-1], latent)
    rev = (latent, *hidden[::-1], d_in)
    dec = []
    for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
      dec += [nn.Linear(a, b), nn.ReLU() if i < len(rev) - 2 else nn.Sigmoid()]
    self.decoder = nn.Sequential(*dec)

  def forward(self, x):
    h = self.encoder(x.flatten(1))
    m, v = self.mean(h), self.variance(h)
    return self.decoder(m + torch.randn_like(v) * torch.exp(v) if self.training else m) \
        .view_as(x), m, v


class ConvAESmall(nn.Module):

  def __init__(self, c=3):
    super().__init__()
    self.conv1 = nn.Conv2d(c, 16, 3, stride=2, padding=1)
    self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
    self.conv3 = nn.Conv2d(32, 64, 5, stride=1, padding=2)
    self.t_conv1 = nn.ConvTranspose2d(64, 32, 5, stride=1, padding=2)
    self.t_conv2 = nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1)
    self.t_conv3 = nn.ConvTranspose2d(16, c, 3, stride=2, padding=2, output_padding=1)

  def forward(self, x):
    x = self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))
    x = torch.relu(self.t_conv2(torch.relu(self.t_conv1(x))))
    return torch.sigmoid(self.t_conv3(x))


def _block(conv):
  return [conv, nn.BatchNorm2d(conv.out_channels), nn.Mish(inplace=True)]


class ConvBNMish(nn.Module):
  """The BN + Mish conv AE / VAE (spatial latent, mean and log-variance by channel)."""

  def __init__(self, vae: bool, latent=128, c=3):
    super().__init__()
    chans = (c, 64, 128, 256, 512, 1024)
    enc = []
    for a, b in zip(chans[:-1], chans[1:]):
      enc += _block(nn.Conv2d(a, b, 4, 2, 1))
    if vae:
      enc.append(nn.Conv2d(1024, latent * 2, kernel_size=3, stride=1, padding=1))
    self.encoder = nn.Sequential(*enc)
    dec_chans = ((latent if vae else 1024), 1024, 512, 256, 128, 64)
    dec = []
    for a, b in zip(dec_chans[:-1], dec_chans[1:]):
      dec += _block(nn.ConvTranspose2d(a, b, 4, 2, 1))
    dec += [nn.Conv2d(64, c, kernel_size=3, stride=1, padding=1), nn.Tanh()]
    self.decoder = nn.Sequential(*dec)
    self.vae = vae
    for m in self.modules():
      if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(m.weight, nonlinearity='linear')
        nn.init.zeros_(m.bias)

  def forward(self, x):
    h = self.encoder(x)
    if not self.vae:
      return self.decoder(h)
    mu, logvar = torch.chunk(h, 2, dim=1)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
    return self.decoder(z), mu, logvar


class PythaeNet(nn.Module):
  """pythae's default MLP (`mlp`) or MNIST conv net (`conv`) with a code of kind ae, vae or
  vqvae, written from pythae's definitions (ae_jax/models/pythae_nets.py lists them).
  `encode(x NCHW)` -> the heads (code; or mean, log-variance), `decode(z [B, L])` -> images
  in [0, 1]; forward(x) decodes the code or mean. Its state_dict's layers are in pythae's
  order (encoder, heads, decoder), with pythae's torch-default initialisation."""

  def __init__(self, net: str, kind: str, latent: int, image_shape=(28, 28, 1)):
    super().__init__()
    h, w, c = image_shape
    self.net, self.shape = net, (c, h, w)
    if net == 'mlp':
      self.body = nn.Sequential(nn.Flatten(), nn.Linear(h * w * c, 512), nn.ReLU())
      width = 512
    else:
      chans, body = (c, 128, 256, 512, 1024), []
      for a, b in zip(chans[:-1], chans[1:]):
        body += [nn.Conv2d(a, b, 4, 2, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
      self.body = nn.Sequential(*body, nn.Flatten())
      width = 1024
    self.heads = nn.ModuleList([nn.Linear(width, latent) for _ in range(2 if kind == 'vae'
                                                                         else 1)])
    if net == 'mlp':
      self.decoder = nn.Sequential(nn.Linear(latent, 512), nn.ReLU(),
                                   nn.Linear(512, h * w * c), nn.Sigmoid())
    else:
      self.project = nn.Linear(latent, 1024 * 16)
      self.decoder = nn.Sequential(
          nn.ConvTranspose2d(1024, 512, 3, 2, padding=1), nn.BatchNorm2d(512), nn.ReLU(),
          nn.ConvTranspose2d(512, 256, 3, 2, padding=1, output_padding=1), nn.BatchNorm2d(256),
          nn.ReLU(), nn.ConvTranspose2d(256, c, 3, 2, padding=1, output_padding=1), nn.Sigmoid())

  def encode(self, x):
    h = self.body(x)
    return tuple(head(h) for head in self.heads)

  def decode(self, z):
    if self.net == 'mlp':
      return self.decoder(z).reshape(-1, *self.shape)
    return self.decoder(self.project(z).reshape(-1, 1024, 4, 4))

  def forward(self, x):
    heads = self.encode(x)
    return (self.decode(heads[0]), *heads)


def load_by_order(module: nn.Module, state_dict) -> None:
  """Load tensors into `module` by position (names may differ; shapes must not)."""
  own = module.state_dict()
  values = list(state_dict.values())
  if len(values) != len(own):
    raise ValueError(f'{len(values)} tensors for {len(own)} entries')
  for (k, mine), v in zip(own.items(), values):
    if tuple(mine.shape) != tuple(v.shape):
      raise ValueError(f'{k}: shape {tuple(mine.shape)}, given {tuple(v.shape)}')
  module.load_state_dict(dict(zip(own, values)))


def build(preset: str, image_shape, latent_dim: int) -> nn.Module:
  h, w, c = image_shape
  d = h * w * c
  if preset == 'mlp_ae_50':
    return MLPAE((d, 256, latent_dim), nn.Sigmoid(), code_act=True)
  if preset == 'mlp_ae_50_refine':
    return MLPAE((d, 256, latent_dim), nn.Sigmoid(), code_act=True, refine=2)
  if preset == 'mlp_vae_50':
    return MLPVAE(d, (4096, 1024, 512), latent_dim)
  if preset == 'fcn_ae_64':
    return MLPAE((d, 1024, 256, 64, latent_dim), nn.Tanh(), code_act=False)
  if preset == 'conv_ae_small':
    return ConvAESmall(c)
  if preset in ('conv_ae_bn_mish', 'conv_vae_bn_mish'):
    return ConvBNMish(preset == 'conv_vae_bn_mish', latent_dim, c)
  raise ValueError(f'no PyTorch reference for preset {preset!r}')


def randomize_batchnorm(module: nn.Module, seed: int = 0) -> None:
  """Give BatchNorm layers non-trivial weights and running statistics (for tests)."""
  g = torch.Generator().manual_seed(seed)
  for m in module.modules():
    if isinstance(m, nn.BatchNorm2d):
      with torch.no_grad():
        m.weight.copy_(1 + 0.2 * torch.randn(m.num_features, generator=g))
        m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
        m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
        m.running_var.copy_(1 + 0.5 * torch.rand(m.num_features, generator=g))


def uses_tanh(preset: str) -> bool:
  return preset in ('fcn_ae_64', 'conv_ae_bn_mish', 'conv_vae_bn_mish')


__all__ = ["PythaeNet", "build", "load_by_order", "randomize_batchnorm", "uses_tanh"]
