"""Every field ae_jax reads, with its default. Experiment configs import this and override.

  python -m ae_jax.main --config configs/base.py --workdir runs/base
"""
import ml_collections


def get_config():
  config = ml_collections.ConfigDict()

  config.model = ml_collections.ConfigDict()
  config.model.preset = ''  # a name from ae_jax.models.PRESETS, or '' for the custom model below
  config.model.kind = 'vae'  # 'ae' | 'vae' (must match the preset's kind)
  config.model.arch = 'mlp'  # custom models: 'mlp' | 'conv' | 'resnet' (model.resnet below)
  # Latent size (flat: units; spatial conv latent: channels). 0 = the preset's published
  # size (mlp_ae_50 128, mlp_vae_50 256, fcn_ae_64 10, conv_vae_bn_mish 1024), 16 for a
  # custom model. The conv AE presets' code is their last conv layer: leave it 0.
  config.model.latent_dim = 0
  config.model.hidden = (512, 256)  # MLP encoder widths; the decoder mirrors them
  config.model.activation = 'relu'  # relu | mish | leaky_relu | gelu | silu
  config.model.latent_activation = 'none'  # AE only: activation on the code (relu | none ...)
  config.model.output_activation = 'sigmoid'  # sigmoid | tanh | none; tanh models see [-1,1]
  config.model.norm = 'none'  # conv: none | batch | group | layer
  config.model.init = 'default'  # default (lecun normal) | kaiming_normal (conv kernels)
  config.model.conv = ml_collections.ConfigDict()
  config.model.conv.channels = (32, 64)  # encoder channels; decoder mirrors, then 3x3 conv
  config.model.conv.kernel = 4
  config.model.conv.stride = 2
  config.model.conv.padding = 1
  config.model.conv.latent = 'flat'  # flat (Dense to latent_dim) | spatial (3x3 conv head)
  config.model.conv.groups = 32  # group norm: groups (largest divisor of channels <= this)
  config.model.conv.upsample = 'phases'  # transposed conv: phases (fast) | subpixel | dilated
  # Convolution gradients: 'canonical' builds both as NHWC/HWIO convolutions (XLA:CPU runs
  # the ones its autodiff emits slowly inside lax.scan), 'xla' uses XLA's own, 'auto'
  # picks canonical on CPU and xla elsewhere. Same values either way.
  config.model.conv.impl = 'auto'
  # XLA:CPU's YNNPACK fusions in the training step: 'off' runs small-channel convolutions
  # 1.1-1.5x faster, 'on' (XLA's default) is 1.5x faster for wide ones and 1.1x for
  # sweeps (README, Performance); 'auto' turns them off on CPU for a single conv model no
  # wider than 128 channels.
  config.model.conv.ynnpack = 'auto'
  # arch='resnet': residual blocks per resolution, strided convs down, upsample+conv up
  config.model.resnet = ml_collections.ConfigDict()
  config.model.resnet.channels = (32, 64, 128, 256)  # width per level, full resolution first
  config.model.resnet.blocks = 1  # residual blocks per level
  config.model.resnet.latent = 'flat'  # flat (Dense code) | spatial (1x1 conv code)
  config.model.resnet.refine = 0  # extra full-resolution blocks at the decoder's end
  config.model.resnet.patch = 1  # the conv path works on patch x patch pixel blocks
  # 'pca': a linear encoder/decoder beside the conv ones, started as the training split's
  # whitened PCA (conv heads start at 0): training starts at the best linear autoencoder
  config.model.resnet.linear = 'none'  # none | pca

  config.data = ml_collections.ConfigDict()
  # Embedded (offline): digits | wafer | dsprites | photos | faces.
  # Files: npy (.npy/.npz) | folder (PNG/JPEG, class subfolders) | wm811k (LSWMD.pkl).
  # tfds: mnist | fashion_mnist | cifar10 | celeb_a (prepared ArrayRecord data, data.path = data_dir).
  config.data.name = 'digits'
  config.data.path = ''  # file or folder for file-based datasets (tfds: its data_dir)
  config.data.labels_path = ''  # npy: optional labels [N] in a separate .npy
  config.data.ids_path = ''  # npy: optional ids [N] in a separate .npy
  config.data.image_size = 0  # resize to this square size; 0 keeps the native size
  config.data.crop = 0  # center-crop to this square size before resizing (celeb_a: 148)
  config.data.channels = 0  # 1 or 3 to convert; 0 keeps the native channels
  config.data.int_max = 0  # integer pixels are 0..int_max; 0 = auto (1 for binary 0/1 data, else 255)
  config.data.num_examples = 0  # generated datasets (wafer, dsprites, photos): how many
  config.data.test_fraction = 0.2  # held-out share, split deterministically by split_seed
  config.data.split_seed = 0
  config.data.tier = 'auto'  # device (whole set on the device) | stream (batches from disk) | auto
  config.data.device_max_mb = 1024.0  # auto: stream when the float32 train split is larger
  config.data.prefetch = 4  # stream: reads (batches or chunks) a background thread keeps ahead
  config.data.stream_chunk_steps = 16  # stream + scan loop: steps read and scanned at a time
  config.data.skip_corrupt = False  # folder: skip unreadable images with a warning
  config.data.allow_pickle = False  # wm811k: LSWMD.pkl is a pickle, which runs code on load
  config.data.wm811k_unlabeled = 'keep'  # keep (label -1) | drop
  config.data.wafer = ml_collections.ConfigDict()
  config.data.wafer.render = 'onehot'  # onehot (3 channels: off, good, fail) | gray (1 channel)
  config.data.wafer.balance = 'uniform'  # uniform | wm811k (the real, 'none'-heavy mix)
  config.data.wafer.seed = 0
  config.data.dsprites = ml_collections.ConfigDict()
  # Inclusive index ranges per factor (None = all): shape 0..2 (square, ellipse, heart),
  # scale 0..5, orientation 0..39, pos_x 0..31, pos_y 0..31.
  for factor in ('shape', 'scale', 'orientation', 'pos_x', 'pos_y'):
    config.data.dsprites[factor] = ml_collections.FieldReference(None, field_type=tuple)
  config.data.dsprites.seed = 0  # which num_examples combinations are drawn

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 64  # the last partial batch of an epoch is dropped
  config.train.num_epochs = 20
  config.train.learning_rate = 1e-3
  config.train.seed = 0  # init, reparameterisation noise and data order
  config.train.eval_every = 5  # evaluate on the test split every N epochs (and at the end)
  config.train.eval_batch_size = 256
  # How an epoch runs over the device-resident data: 'scan' (one compiled lax.scan),
  # 'python' (a loop of one compiled step), or 'auto' (scan, except on CPU for conv models
  # with model.conv.impl='xla', whose convolution gradients run slowly inside loop bodies;
  # see README, Performance).
  config.train.loop = 'auto'
  # Steps per compiled chunk (resident data, scan loop): 0 = a whole epoch. Metrics,
  # evaluation, checkpoints and the SIGTERM/SIGINT check happen at chunk boundaries.
  config.train.chunk_steps = 0
  # Sweeps: a member whose loss or gradients turn NaN/inf is frozen at its last finite
  # state (recorded in summary.json and the tables) while the others train on. False:
  # the run stops with the step, member and term.
  config.train.skip_nonfinite_members = False

  config.optim = ml_collections.ConfigDict()
  config.optim.name = 'adam'  # adam (weight_decay is L2, as torch.optim.Adam) | adamw (decoupled)
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.eps = 1e-8
  config.optim.weight_decay = 0.0
  config.optim.schedule = 'constant'  # constant | cosine | warmup_cosine
  config.optim.warmup_epochs = 0.0  # warmup_cosine: linear warm-up length
  config.optim.plateau_factor = 0.0  # >0: reduce-LR-on-plateau on the epoch's mean train loss
  config.optim.plateau_patience = 10  # epochs without 1e-4 relative improvement
  config.optim.grad_clip_norm = 0.0  # >0: clip gradients to this global norm
  # parameter paths that never change: a module name anywhere in the path ('linear': the
  # resnet family's PCA-started linear pair) or a path ('encoder/linear')
  config.optim.freeze = ()

  config.loss = ml_collections.ConfigDict()
  # mse | l1 | bce (sigmoid logits) | gaussian_nll | log_mse (Gaussian with each image's
  # best variance, sigma^2 = its MSE: P/2 ln MSE; maximises the mean PSNR over images)
  config.loss.reconstruction = 'mse'
  # How the reconstruction term reduces over one image's pixels: 'sum' or 'mean'.
  # The KL is always summed over latent units, and beta multiplies that sum.
  config.loss.reduction = 'sum'
  config.loss.beta = 1.0  # weight of the KL term: loss = recon + beta * KL
  config.loss.kl_warmup_epochs = 0.0  # >0: beta ramps linearly from 0 over this many epochs
  config.loss.nll_sigma = 0.1  # gaussian_nll: the decoder's fixed standard deviation
  # Extra training terms against blur (README, "Losses"), each a per-image average
  # (x P pixel values under reduction='sum'), added to the loss, not to the likelihood:
  config.loss.ssim_weight = 0.0  # (1 - SSIM)
  config.loss.ms_ssim_weight = 0.0  # (1 - MS-SSIM), images >= 32 px
  config.loss.fft_weight = 0.0  # focal frequency loss (spectrum distance, hard frequencies first)
  config.loss.lpips_weight = 0.0  # LPIPS-VGG (pip install -e '.[lpips]')

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every_epochs = 5  # also saved at the end
  config.checkpoint.max_to_keep = 3
  config.checkpoint.best_metric = ''  # e.g. 'loss' or 'psnr' (eval split); '' = off
  config.checkpoint.best_mode = 'min'  # min | max
  # Epochs whose checkpoints are kept beyond max_to_keep (sweep.eval_epochs are kept too),
  # e.g. (10, 50, 100) for reconstructions at chosen epochs.
  config.checkpoint.keep_epochs = ml_collections.FieldReference(None, field_type=tuple)

  config.eval = ml_collections.ConfigDict()
  # Metrics (README, "Metrics"); 'default' = psnr, ssim, loss terms, -ELBO, active units,
  # KL per unit every evaluation and, at the end, the PCA baseline and LPIPS-VGG (when the
  # lpips extra is installed). Add e.g. 'ms_ssim', 'nll_iwae', 'mig', 'fd_classifier'.
  config.eval.metrics = ('default',)
  config.eval.iwae_samples = 1000  # nll_iwae: importance samples per image
  config.eval.iwae_chunk = 100  # nll_iwae: samples per pass (bounds memory)
  config.eval.num_samples = 1000  # sample-quality metrics: prior samples drawn
  config.eval.max_images = 0  # pass metrics (LPIPS, IWAE, MIG): test images used; 0 = all

  # Devices (README, "Scale-out"): a batch is split over mesh.data devices (-1 = all the
  # rest), sweep members over mesh.members devices. One device: both 1.
  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1
  config.mesh.members = 1

  config.figures = ml_collections.ConfigDict()
  config.figures.enabled = True
  config.figures.log_scale = True  # loss curves on a log y axis
  config.figures.num_images = 8  # originals vs reconstructions shown

  # Sweeps (README, "Sweeps"): each axis is None (not swept) or a tuple of values.
  sweep = lambda: ml_collections.FieldReference(None, field_type=tuple)
  config.sweep = ml_collections.ConfigDict()
  # vmapped axes: all their members train in one compiled program
  config.sweep.beta = sweep()
  config.sweep.learning_rate = sweep()
  config.sweep.seed = sweep()
  config.sweep.kl_warmup_epochs = sweep()
  config.sweep.latent_dim = sweep()  # by masking a model built at the largest size
  # outer axes: one program per value (they change shapes or the data order)
  config.sweep.batch_size = sweep()
  config.sweep.num_epochs = sweep()
  config.sweep.image_size = sweep()
  config.sweep.hidden = sweep()  # tuples of MLP widths, e.g. ((256,), (512, 256))
  config.sweep.channels = sweep()  # tuples of conv channels
  config.sweep.preset = sweep()  # preset names
  config.sweep.mode = 'product'  # vmapped axes: product | zip
  config.sweep.eval_epochs = sweep()  # extra evaluation epochs, e.g. (20, 80, 100)
  config.sweep.max_members_per_program = 0  # split bigger sweeps into chunks; 0 = by memory
  # How members share one program: vmap (batched) | unroll (one copy per member) | auto
  # (unroll for conv models on CPU, where vmapped convolutions become slow grouped ones)
  config.sweep.vectorize = 'auto'

  # Compute dtype: float32, or bfloat16 for GPU/TPU (parameters, optimizer state and
  # losses stay float32). On CPU keep float32: XLA:CPU has no fast bfloat16 kernels.
  config.dtype = 'float32'
  config.progress = True  # tqdm bar (only when stderr is a terminal)
  return config
