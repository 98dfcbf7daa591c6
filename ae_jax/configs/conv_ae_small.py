"""Report 002's AE, preset conv_ae_small (3->16->32->64: 3x3 stride 2, 3x3 stride 2, 5x5 stride
1; transposed back; sigmoid), on one-hot wafer maps, 26x26, with the report's settings: Adam
at lr 1e-3 with weight decay 1e-5 (L2, as torch.optim.Adam), batch 61, nn.MSELoss (the
per-pixel mean, loss.reduction='mean', so the loss reads as the report's).

  python -m ae_jax.main --config configs/conv_ae_small.py --workdir runs/conv_ae_small
  # the real WM-811K pickle: --config.data.name=wm811k --config.data.path=LSWMD.pkl

Data: generated WM-811K-style maps in the nine failure classes (the report used WM-811K).

Published by report 002: training reconstruction loss 0.0316 after its epochs.
"""
from ae_jax.configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'wafer'
  config.data.image_size = 26
  config.model.preset = 'conv_ae_small'
  config.model.kind = 'ae'
  config.loss.reconstruction = 'mse'
  config.loss.reduction = 'mean'  # nn.MSELoss
  config.optim.weight_decay = 1e-5
  config.train.learning_rate = 1e-3
  config.train.batch_size = 61
  config.train.num_epochs = 100
  config.train.eval_every = 10
  config.checkpoint.every_epochs = 20
  return config
