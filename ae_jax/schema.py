"""Every config key ae_jax reads, declared once.

A `Key` says what the key is called, its default and type, the values it allows, what
changing it means for a trained workdir (`role`), whether it is a sweep axis, and what it
does, in one line. Everything else is derived from these declarations:

- the base config (`base_config()`, what `ae_jax/configs/base.py` returns);
- the generic validation (config_values.check_value; config_lib adds the rules that span
  keys);
- the override parser's types (config_values.parse_value: `--config.train.batch_size=32`);
- the workdir compatibility rule (`role`: 'model' keys change what a workdir's
  checkpoints mean, 'free' keys may change when it resumes, is evaluated or drawn);
- the sweep axis tables (`sweep='vmap'`: members train together in one compiled program;
  'outer': one program per value), and the `config.sweep.<axis>` entries;
- docs/configs.md (`python -m ae_jax.docs`, docs.configs_markdown).

Adding a key is one declaration below (or in the module that owns it, see `_contributed`).
"""
from __future__ import annotations

import copy

import ml_collections

from ae_jax import objectives
from ae_jax.priors import registry as prior_registry
from ae_jax.data import SOURCES
from ae_jax.keys import CHECKS, KINDS, ROLES, Key  # noqa: F401 - the declaration's home
from ae_jax.models import kinds, layers, PRESETS
from ae_jax.models.layers import ACTIVATIONS


def _presets():
  return ('',) + tuple(PRESETS)


def _activations(with_none: bool):
  return tuple(k for k in ACTIVATIONS if with_none or k != 'none')


def _objectives():
  return objectives.NAMES


def _sources():
  return tuple(SOURCES)


def _layers(name: str):
  return getattr(layers, name)


_FREE = 'free'
_DSPRITES = ('shape', 'scale', 'orientation', 'pos_x', 'pos_y')

CORE: tuple[Key, ...] = (
    # ---- model ----------------------------------------------------------------------
    Key('model.preset', '', 'str', 'a report architecture by name (docs/models.md), or \'\' '
        'for the custom model below', choices=_presets, sweep='outer'),
    Key('model.kind', 'vae', 'str', 'ae | vae | vqvae (a code quantised by a learned codebook, '
        'model.vq) | fsq (finite scalar quantisation, model.fsq); must match the preset\'s '
        'kind (the ldm presets take any; the pythae ones ae, vae or vqvae)',
        choices=kinds.NAMES),
    Key('model.arch', 'mlp', 'str', 'custom models: mlp | conv | resnet | ldm (the '
        'latent-diffusion autoencoder, model.ldm)', choices=('mlp', 'conv', 'resnet', 'ldm')),
    Key('model.latent_dim', 0, 'int', 'latent size (flat: units; spatial: channels); 0 = the '
        'preset\'s published size, 16 for a custom model', check='non_negative',
        sweep='vmap'),
    Key('model.hidden', (512, 256), 'ints', 'MLP encoder widths; the decoder mirrors them',
        check='positive', non_empty=True, sweep='outer'),
    Key('model.activation', 'relu', 'str', 'hidden activation',
        choices=lambda: _activations(False)),
    Key('model.latent_activation', 'none', 'str', 'AE only: activation on the code',
        choices=lambda: _activations(True)),
    Key('model.output_activation', 'sigmoid', 'str', 'sigmoid | tanh | none; tanh models see '
        'images mapped to [-1, 1]', choices=lambda: _layers('OUTPUT_ACTIVATIONS')),
    Key('model.norm', 'none', 'str', 'conv and resnet models: normalisation layer',
        choices=lambda: _layers('NORMS')),
    Key('model.init', 'default', 'str', 'default (lecun normal) | kaiming_normal (conv '
        'kernels, as torch\'s kaiming_normal_)', choices=('default', 'kaiming_normal')),
    Key('model.conv.channels', (32, 64), 'ints', 'conv: encoder channels; the decoder '
        'mirrors them, then a 3x3 conv', check='positive', non_empty=True, sweep='outer'),
    Key('model.conv.kernel', 4, 'int', 'conv: kernel size', check='positive'),
    Key('model.conv.stride', 2, 'int', 'conv: stride', check='positive'),
    Key('model.conv.padding', 1, 'int', 'conv: padding (torch\'s convention)',
        check='non_negative'),
    Key('model.conv.latent', 'flat', 'str', 'conv: flat (Dense to latent_dim) | spatial (3x3 '
        'conv head)', choices=('flat', 'spatial')),
    Key('model.conv.groups', 32, 'int', 'group norm: groups (the largest divisor of the '
        'channels up to this)', check='positive'),
    Key('model.conv.upsample', 'phases', 'str', 'transposed convs: phases (fast) | subpixel '
        '| dilated; same values', choices=('phases', 'subpixel', 'dilated'), role=_FREE),
    Key('model.conv.impl', 'auto', 'str', 'conv gradients: canonical (NHWC/HWIO; fast inside '
        'lax.scan on XLA:CPU) | xla | auto (canonical on CPU); same values',
        choices=('auto', 'canonical', 'xla'), role=_FREE),
    Key('model.conv.ynnpack', 'auto', 'str', 'XLA:CPU YNNPACK fusions in the training step: '
        'on | off | auto (off on CPU for one conv model <= 128 channels; docs/performance.md)',
        choices=('auto', 'on', 'off'), role=_FREE),
    Key('model.resnet.channels', (32, 64, 128, 256), 'ints', 'resnet: width per level, full '
        'resolution first', check='positive', non_empty=True),
    Key('model.resnet.blocks', 1, 'int', 'resnet: residual blocks per level',
        check='positive'),
    Key('model.resnet.latent', 'flat', 'str', 'resnet: flat (Dense code) | spatial (1x1 conv '
        'code)', choices=('flat', 'spatial')),
    Key('model.resnet.refine', 0, 'int', 'resnet: extra full-resolution blocks at the '
        'decoder\'s end', check='non_negative'),
    Key('model.resnet.patch', 1, 'int', 'resnet: the conv path works on patch x patch pixel '
        'blocks', check='positive'),
    Key('model.resnet.linear', 'none', 'str', 'resnet: pca adds a linear encoder/decoder '
        'started as the training split\'s whitened PCA', choices=('none', 'pca')),
    Key('model.ldm.ch', 128, 'int', 'ldm: base width (level i is ch * ch_mult[i] wide)',
        check='positive'),
    Key('model.ldm.ch_mult', (1, 2, 4, 4), 'ints', 'ldm: width multiplier per level; '
        '2^(levels - 1) is the downsampling factor', check='positive', non_empty=True),
    Key('model.ldm.blocks', 2, 'int', 'ldm: ResNet blocks per level (the decoder has one more)',
        check='positive'),
    Key('model.ldm.attn_levels', (), 'ints', 'ldm: levels with self-attention after their '
        'blocks (CompVis\' attn_resolutions at 256 px: 16 -> level 4)', check='non_negative'),
    Key('model.ldm.mid_attention', True, 'bool', 'ldm: attention in the middle block'),
    Key('model.ldm.groups', 32, 'int', 'ldm: GroupNorm groups (dividing every width)',
        check='positive'),
    Key('model.learned_logvar', False, 'bool', 'a learned scalar log-variance s of the '
        'output: the reconstruction terms become rec / exp(s) + s per value (latent '
        'diffusion\'s nll)'),
    Key('model.disc.layers', 3, 'int', 'loss.gan_weight > 0: the PatchGAN discriminator\'s '
        'stride-2 layers (receptive field 70 px at 3)', check='positive'),
    Key('model.disc.channels', 64, 'int', 'PatchGAN: first layer\'s width (doubling, up to 8x)',
        check='positive'),
    Key('model.disc.norm', 'batch', 'str', 'PatchGAN: batch | actnorm | none',
        choices=('batch', 'actnorm', 'none')),
    # ---- data -----------------------------------------------------------------------
    Key('data.name', 'digits', 'str', 'embedded: digits | wafer | dsprites | photos | faces; '
        'files: npy | folder | wm811k | idx; tfds: mnist | fashion_mnist | cifar10 | celeb_a',
        choices=_sources),
    Key('data.path', '', 'str', 'file or folder of file-based datasets (tfds: its data_dir)'),
    Key('data.labels_path', '', 'str', 'npy: optional labels [N] in a separate .npy'),
    Key('data.ids_path', '', 'str', 'npy: optional ids [N] in a separate .npy'),
    Key('data.image_size', 0, 'int', 'resize to this square size; 0 keeps the native size',
        check='non_negative', sweep='outer'),
    Key('data.crop', 0, 'int', 'center-crop to this square size before resizing (celeb_a: '
        '148); 0 = no crop', check='non_negative'),
    Key('data.channels', 0, 'int', '1 or 3 to convert; 0 keeps the native channels',
        choices=(0, 1, 3)),
    Key('data.int_max', 0, 'int', 'integer pixels are 0..int_max; 0 = auto (1 for binary '
        '0/1 data, else 255)', check='non_negative'),
    Key('data.num_examples', 0, 'int', 'generated datasets (wafer, dsprites, photos): how '
        'many; idx: the first N training images; 0 = their default (all)',
        check='non_negative'),
    Key('data.test_fraction', 0.2, 'float', 'held-out share, split deterministically by '
        'split_seed', check='open_unit'),
    Key('data.split_seed', 0, 'int', 'seed of the train/test split', check='non_negative'),
    Key('data.tier', 'auto', 'str', 'device (the whole set on the device) | stream (batches '
        'from disk) | auto', choices=('auto', 'device', 'stream'), role=_FREE),
    Key('data.device_max_mb', 1024.0, 'float', 'auto tier: stream when the float32 train '
        'split is larger', check='non_negative', role=_FREE),
    Key('data.prefetch', 4, 'int', 'stream: reads a background thread keeps ahead',
        check='non_negative', role=_FREE),
    Key('data.stream_chunk_steps', 16, 'int', 'stream + scan loop: steps read and scanned at '
        'a time', check='positive', role=_FREE),
    Key('data.skip_corrupt', False, 'bool', 'folder: skip unreadable images with a warning'),
    Key('data.background', 'white', 'str', 'colour transparent pixels are composited onto '
        '(RGBA/LA/palette transparency in folders, a 4th channel in arrays): white, black or '
        'a hex colour such as #808080'),
    Key('data.allow_pickle', False, 'bool', 'wm811k: LSWMD.pkl is a pickle, which runs code '
        'on load: opt in', role=_FREE),
    Key('data.wm811k_unlabeled', 'keep', 'str', 'wm811k: keep (label -1) | drop the '
        'unlabelled maps', choices=('keep', 'drop')),
    Key('data.wafer.render', 'onehot', 'str', 'wafer maps: onehot (3 channels: off, good, '
        'fail) | gray (1 channel)', choices=('onehot', 'gray')),
    Key('data.wafer.balance', 'uniform', 'str', 'generated wafers: uniform | wm811k (the '
        'real, \'none\'-heavy mix)', choices=('uniform', 'wm811k')),
    Key('data.wafer.seed', 0, 'int', 'generated wafers: seed', check='non_negative'),
    *(Key(f'data.dsprites.{f}', None, 'ints', f'dsprites: inclusive index range (lo, hi) of '
          f'factor {f}; None = all', check='non_negative', nullable=True)
      for f in _DSPRITES),
    Key('data.dsprites.seed', 0, 'int', 'dsprites: which num_examples combinations are drawn',
        check='non_negative'),
    # ---- train ----------------------------------------------------------------------
    Key('train.batch_size', 64, 'int', 'the last partial batch of an epoch is dropped',
        check='positive', sweep='outer'),
    Key('train.num_epochs', 20, 'int', 'epochs to train (a rerun with more continues)',
        check='positive', role=_FREE, sweep='outer'),
    Key('train.learning_rate', 1e-3, 'float', 'base learning rate', check='positive',
        sweep='vmap'),
    Key('train.seed', 0, 'int', 'init, reparameterisation noise and data order',
        check='non_negative', sweep='vmap'),
    Key('train.eval_every', 5, 'int', 'evaluate on the test split every N epochs (and at '
        'the end)', check='positive', role=_FREE),
    Key('train.eval_batch_size', 256, 'int', 'evaluation batch', check='positive',
        role=_FREE),
    Key('train.loop', 'auto', 'str', 'scan (one compiled lax.scan per chunk) | python (one '
        'compiled step at a time) | auto', choices=('auto', 'scan', 'python'), role=_FREE),
    Key('train.chunk_steps', 0, 'int', 'steps per compiled chunk (resident data, scan loop); '
        '0 = a whole epoch', check='non_negative', role=_FREE),
    Key('train.skip_nonfinite_members', False, 'bool', 'sweeps: freeze a member whose loss or '
        'gradients turn non-finite, the others train on', role=_FREE),
    Key('train.init_from', '', 'str', 'a new run starts from another workdir\'s weights '
        '(WORKDIR[:MEMBER][@EPOCH], e.g. an imported VAE) and trains with this config\'s loss, '
        'optimizer and data; \'\' = its own initialisation'),
    # ---- optim ----------------------------------------------------------------------
    Key('optim.name', 'adam', 'str', 'adam (weight_decay is L2, as torch.optim.Adam) | adamw '
        '(decoupled)', choices=('adam', 'adamw')),
    Key('optim.b1', 0.9, 'float', 'Adam beta1', check='unit'),
    Key('optim.b2', 0.999, 'float', 'Adam beta2', check='unit'),
    Key('optim.eps', 1e-8, 'float', 'Adam epsilon', check='positive'),
    Key('optim.weight_decay', 0.0, 'float', 'L2 (adam) or decoupled (adamw) decay',
        check='non_negative'),
    Key('optim.schedule', 'constant', 'str', 'constant | cosine | warmup_cosine',
        choices=('constant', 'cosine', 'warmup_cosine')),
    Key('optim.warmup_epochs', 0.0, 'float', 'warmup_cosine: linear warm-up length',
        check='non_negative'),
    Key('optim.plateau_factor', 0.0, 'float', '> 0: reduce-LR-on-plateau on the epoch\'s mean '
        'train loss, by this factor (< 1)', check='unit'),
    Key('optim.plateau_patience', 10, 'int', 'epochs without 1e-4 relative improvement',
        check='non_negative'),
    Key('optim.grad_clip_norm', 0.0, 'float', '> 0: clip gradients to this global norm',
        check='non_negative'),
    Key('optim.disc_learning_rate', 1e-4, 'float', 'a discriminator\'s Adam learning rate '
        '(PatchGAN, FactorVAE\'s TC discriminator)', check='positive'),
    Key('optim.disc_b1', 0.5, 'float', 'a discriminator\'s Adam beta1 (taming, FactorVAE)',
        check='unit'),
    Key('optim.disc_b2', 0.9, 'float', 'a discriminator\'s Adam beta2', check='unit'),
    Key('optim.freeze', (), 'strs', 'parameter paths that never change: a module name '
        'anywhere in the path (\'linear\') or a path (\'encoder/linear\')'),
    # ---- loss -----------------------------------------------------------------------
    Key('loss.objective', 'elbo', 'str', 'what training minimises (docs/losses.md): elbo | '
        'iwae | tcvae | factorvae | wae_mmd | rae', choices=_objectives),
    Key('loss.reconstruction', 'mse', 'str', 'mse | l1 | bce (sigmoid logits) | gaussian_nll '
        '| log_mse (each image\'s best variance: maximises mean PSNR)',
        choices=('mse', 'l1', 'bce', 'gaussian_nll', 'log_mse')),
    Key('loss.reduction', 'sum', 'str', 'how the reconstruction term reduces over one '
        'image\'s pixels; the KL is always summed over latent units', choices=('sum', 'mean')),
    Key('loss.beta', 1.0, 'float', 'weight of the latent regulariser: the KL (loss = recon '
        '+ beta * KL), beta-TCVAE\'s TC, WAE\'s MMD, RAE\'s code penalty',
        check='non_negative', sweep='vmap'),
    Key('loss.kl_warmup_epochs', 0.0, 'float', '> 0: beta ramps linearly from 0 over this '
        'many epochs', check='non_negative', sweep='vmap'),
    Key('loss.nll_sigma', 0.1, 'float', 'gaussian_nll: the decoder\'s fixed standard '
        'deviation', check='positive'),
    Key('loss.ssim_weight', 0.0, 'float', 'extra term (1 - SSIM), a per-image average (x P '
        'pixel values under reduction=sum)', check='non_negative'),
    Key('loss.ms_ssim_weight', 0.0, 'float', 'extra term (1 - MS-SSIM), images >= 32 px',
        check='non_negative'),
    Key('loss.fft_weight', 0.0, 'float', 'extra term: focal frequency loss (spectrum '
        'distance, hard frequencies first)', check='non_negative'),
    Key('loss.lpips_weight', 0.0, 'float', 'extra term: LPIPS with the loss.lpips_net trunk '
        '(needs the lpips extra)', check='non_negative'),
    Key('loss.lpips_net', 'vgg', 'str', 'the LPIPS term\'s trunk: vgg (VGG16, as the '
        'latent-diffusion recipe trains) or alex (AlexNet, several times cheaper; the '
        'lpips_vgg metric still grades with VGG)', choices=('vgg', 'alex')),
    Key('loss.commitment', 0.25, 'float', 'vqvae: weight of the commitment term (van den '
        'Oord et al.: 0.25)', check='non_negative', sweep='vmap'),
    Key('loss.gan_weight', 0.0, 'float', '> 0: a PatchGAN discriminator (model.disc) and its '
        'generator term, weighted this times the adaptive weight (taming: 0.5)',
        check='non_negative', sweep='vmap'),
    Key('loss.gan_start_step', 0, 'int', 'optimizer step from which the discriminator and '
        'its term count (before it the run is the one without them)',
        check='non_negative'),
    Key('loss.gan_loss', 'hinge', 'str', 'the discriminator\'s loss: hinge | vanilla',
        choices=('hinge', 'vanilla')),
    Key('loss.gan_generator', 'hinge', 'str', 'the generator\'s term: hinge (taming\'s '
        '-mean D(x\')) | nonsaturating (softplus(-D(x\')))', choices=('hinge', 'nonsaturating')),
    Key('loss.gan_adaptive', True, 'bool', 'scale the generator term by ||grad rec|| / '
        '(||grad G|| + 1e-4) at the decoder\'s last layer (taming), clipped to [0, 1e4]'),
    # ---- checkpoint -----------------------------------------------------------------
    Key('checkpoint.every_epochs', 5, 'int', 'save every N epochs (and at the end)',
        check='positive', role=_FREE),
    Key('checkpoint.max_to_keep', 3, 'int', 'newest checkpoints kept', check='positive',
        role=_FREE),
    Key('checkpoint.best_metric', '', 'str', 'keep the best checkpoint by this eval metric '
        '(e.g. loss, psnr); \'\' = off', role=_FREE),
    Key('checkpoint.best_mode', 'min', 'str', 'min | max', choices=('min', 'max'),
        role=_FREE),
    Key('checkpoint.keep_epochs', None, 'ints', 'epochs whose checkpoints are kept beyond '
        'max_to_keep, e.g. (10, 50, 100)', check='at_least_1', nullable=True, role=_FREE),
    # ---- eval -----------------------------------------------------------------------
    Key('eval.metrics', ('default',), 'strs', 'metrics (docs/metrics.md); \'default\' = the '
        'default set (LPIPS when its extra is installed)', non_empty=True, role=_FREE),
    Key('eval.iwae_samples', 1000, 'int', 'nll_iwae: importance samples per image',
        check='positive', role=_FREE),
    Key('eval.iwae_chunk', 100, 'int', 'nll_iwae: samples per pass (bounds memory)',
        check='positive', role=_FREE),
    Key('eval.factor_vae_votes', 1000, 'int', 'factor_vae: training votes of the majority '
        'classifier (half as many evaluation votes), each a batch of 64 fresh dSprites images '
        'with one factor fixed (Kim & Mnih: 10,000 and 5,000)', check='positive', role=_FREE),
    Key('eval.num_samples', 1000, 'int', 'sample-quality metrics: prior samples drawn',
        check='positive', role=_FREE),
    Key('eval.max_images', 0, 'int', 'pass metrics (LPIPS, IWAE, MIG): test images used; 0 = '
        'all', check='non_negative', role=_FREE),
    # ---- mesh -----------------------------------------------------------------------
    Key('mesh.data', -1, 'int', 'devices splitting each batch; -1 = every device left',
        role=_FREE),
    Key('mesh.members', 1, 'int', 'devices splitting a sweep\'s members', check='at_least_1',
        role=_FREE),
    # ---- figures and the rest -------------------------------------------------------
    Key('figures.enabled', True, 'bool', 'draw figures/*.png', role=_FREE),
    Key('figures.log_scale', True, 'bool', 'loss curves on a log y axis', role=_FREE),
    Key('figures.num_images', 8, 'int', 'originals vs reconstructions shown',
        check='positive', role=_FREE),
    Key('dtype', 'float32', 'str', 'compute dtype: float32, or bfloat16 on GPU/TPU '
        '(parameters, optimizer state and losses stay float32)',
        choices=('float32', 'bfloat16'), role=_FREE),
    Key('progress', True, 'bool', 'progress of long phases (training, pass metrics, latent '
        'tools): a bar on a terminal, else a line with the count and time left every 30 s',
        role=_FREE),
    # ---- experiment tracking (docs/logging.md) -------------------------------------
    Key('log.tensorboard', True, 'bool', 'TensorBoard event files in <workdir>/tensorboard/'
        '<member>/: every metrics.jsonl row as scalars, the reconstructions at each '
        'evaluation, a sweep\'s hparams table', role=_FREE),
    Key('log.wandb', False, 'bool', 'the same to Weights & Biases (pip install '
        '\'ae_jax[wandb]\'), one W&B run per member', role=_FREE),
    Key('log.wandb_project', '', 'str', 'log.wandb: the W&B project to sync to; \'\' = '
        'offline (files under <workdir>/wandb/, `wandb sync` them later)', role=_FREE),
    # ---- a prior trained on a trained model's codes (python -m ae_jax.prior) --------
    Key('prior.kind', 'flow', 'str', 'the prior over the codes (docs/priors.md): flow | '
        'autoregressive (discrete codes) | two_stage | gaussian | gmm | categorical '
        '(discrete codes)', choices=lambda: tuple(prior_registry.PRIORS), role=_FREE),
    Key('prior.name', '', 'str', 'its folder under <workdir>/priors/; \'\' = the kind',
        role=_FREE),
    Key('prior.codes', 'mean', 'str', 'the training codes it models: mean (the posterior '
        'means) | sample (one draw of q(z|x) per image, fixed)', choices=('mean', 'sample'),
        role=_FREE),
    Key('prior.num_epochs', 30, 'int', 'epochs over the training codes (a rerun with more '
        'continues)', check='positive', role=_FREE),
    Key('prior.batch_size', 256, 'int', 'codes per step (the last partial batch is dropped)',
        check='positive', role=_FREE),
    Key('prior.learning_rate', 1e-3, 'float', 'Adam learning rate', check='positive',
        role=_FREE),
    Key('prior.grad_clip_norm', 1.0, 'float', 'clip gradients to this global norm; 0 = off',
        check='non_negative', role=_FREE),
    Key('prior.seed', 0, 'int', 'initialisation, noise and data order', check='non_negative',
        role=_FREE),
    Key('prior.eval_every', 10, 'int', 'the held-out number on the test codes every N '
        'epochs (and at the end)', check='positive', role=_FREE),
    Key('prior.checkpoint_every', 10, 'int', 'a checkpoint every N epochs and at the end '
        '(SIGTERM and Ctrl-C save at once whatever this says)', check='positive', role=_FREE),
    Key('prior.num_samples', 1000, 'int', 'samples decoded to grade it at the end (sample '
        'FD, precision/recall); 0 = no grading', check='non_negative', role=_FREE),
    # ---- sweep settings (the axes themselves are derived: sweep.<axis>) ------------
    Key('sweep.mode', 'product', 'str', 'vmapped axes combine as a product | zip',
        choices=('product', 'zip')),
    Key('sweep.eval_epochs', None, 'ints', 'extra evaluation epochs, e.g. (20, 80, 100)',
        check='at_least_1', nullable=True, role=_FREE),
    Key('sweep.max_members_per_program', 0, 'int', 'split bigger sweeps into chunks; 0 = by '
        'memory', check='non_negative'),
    Key('sweep.vectorize', 'auto', 'str', 'how members share a program: vmap | unroll | auto '
        '(unroll for conv models on CPU)', choices=('auto', 'vmap', 'unroll'), role=_FREE),
)


def _contributed() -> tuple[Key, ...]:
  """Keys declared by the modules that own them: the quantizing model kinds' settings, the
  objectives' hyperparameters and each prior kind's settings."""
  return kinds.keys() + objectives.keys() + prior_registry.keys()


def keys() -> tuple[Key, ...]:
  return CORE + _contributed()


def by_name() -> dict[str, Key]:
  return {k.name: k for k in keys()}


# Member names join the swept axes in this order (beta=4,seed=1), and workdirs record them:
# the axes of earlier versions keep their place; axes declared since follow in declaration
# order.
AXIS_ORDER = ('beta', 'learning_rate', 'seed', 'kl_warmup_epochs', 'latent_dim', 'batch_size',
              'num_epochs', 'image_size', 'hidden', 'channels', 'preset')


def axes(kind: str) -> dict[str, Key]:
  """Sweep axes of `kind` ('vmap' | 'outer'): {axis name: key}, in AXIS_ORDER."""
  found = [k for k in keys() if k.sweep == kind]
  rank = lambda k: AXIS_ORDER.index(k.axis) if k.axis in AXIS_ORDER else len(AXIS_ORDER)
  return {k.axis: k for k in sorted(found, key=rank)}


def _sweep_keys() -> tuple[Key, ...]:
  """config.sweep.<axis>: a tuple of the axis's values, or None (not swept)."""
  out = []
  for k in list(axes('vmap').values()) + list(axes('outer').values()):
    if k.sweep:
      what = ('vmapped: its members train together in one compiled program'
              if k.sweep == 'vmap' else 'outer: one program per value')
      out.append(Key(f'sweep.{k.axis}', None, 'tuple', f'values of {k.name} ({what})',
                     nullable=True))
  return tuple(out)


def all_keys() -> tuple[Key, ...]:
  """Every key of a config, the derived sweep axes included."""
  return keys() + _sweep_keys()


# ---- the base config ---------------------------------------------------------------


def base_config() -> ml_collections.ConfigDict:
  """A config with every key at its default."""
  config = ml_collections.ConfigDict()
  for k in all_keys():
    parent, _, leaf = k.name.rpartition('.')
    node = config
    for part in parent.split('.') if parent else ():
      if part not in node:
        node[part] = ml_collections.ConfigDict()
      node = node[part]
    if k.default is None:
      node[leaf] = ml_collections.FieldReference(None, field_type=tuple)
    else:
      node[leaf] = k.default
  return config


def get(config, dotted: str):
  node = config
  for part in dotted.split('.'):
    node = node[part]
  return node


def set_value(config, dotted: str, value) -> None:
  parent, _, last = dotted.rpartition('.')
  (get(config, parent) if parent else config)[last] = value


def thaw(config) -> ml_collections.ConfigDict:
  """A mutable deep copy of `config` (frozen or not)."""
  if isinstance(config, ml_collections.FrozenConfigDict):
    # ConfigDict(frozen) shares the nested dicts between copies: deep-copy them apart
    return copy.deepcopy(ml_collections.ConfigDict(config))
  return copy.deepcopy(config)


# ---- the workdir rule -----------------------------------------------------------------


def is_free(name: str) -> bool:
  """Whether changing `name` keeps a trained workdir's checkpoints meaning the same (keys
  no declaration knows, e.g. of another version, are not free)."""
  key = {k.name: k for k in all_keys()}.get(name)
  return key is not None and key.role == 'free'
