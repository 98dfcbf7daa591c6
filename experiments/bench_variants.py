"""Training-step time of variants of one config, measured in one process, as ratios to the
first variant (the reference).

  python experiments/bench_variants.py --families               # every family against the VAE
  python experiments/bench_variants.py --lpips                  # the LPIPS term against MSE
  python experiments/bench_variants.py --config vae_beta --variant vae: \\
      --variant tcvae:loss.objective=tcvae [--steps 10] [--record FILE.json]

Each variant is `name:key=value,key=value` over the config (after its `--config.*`
overrides). The step is `ae_jax.bench.measure`'s (synthetic images, compiled step, median
of timed steps after warm-up). `--record` writes a benchmark file (docs/benchmarks/;
docs/performance.md is generated from them) whose results carry `variant` and
`ratio_to_reference`.
"""
from __future__ import annotations

import argparse
import shlex
import sys

# the model_families study's dSprites network, one variant per family
FAMILIES = [
    'vae:', 'ae:model.kind=ae', 'beta_vae:loss.beta=4.0',
    'tcvae:loss.objective=tcvae,loss.beta=6.0',
    'factorvae:loss.objective=factorvae,loss.critic_hidden=(256,256,256)',
    'wae_mmd:model.kind=ae,loss.objective=wae_mmd,loss.beta=100.0',
    'rae:model.kind=ae,loss.objective=rae', 'iwae:loss.objective=iwae,loss.iwae_samples=5',
    'vqvae:model.kind=vqvae,model.vq.codes=512']
FAMILY_CONFIG = ['--config.data.name=dsprites', '--config.model.arch=mlp',
                 '--config.model.hidden=(512,256)', '--config.model.latent_dim=10',
                 '--config.loss.reconstruction=bce', '--config.train.batch_size=64',
                 '--config.data.image_size=64', '--config.data.channels=1']
# configs/ae_photos.py with and without the LPIPS-VGG term of the LPIPS fix's command
LPIPS = ['mse:', 'l1_lpips_vgg:loss.reconstruction=l1,loss.reduction=mean,loss.lpips_weight=1.0',
         'l1_lpips_alex:loss.reconstruction=l1,loss.reduction=mean,loss.lpips_weight=1.0,'
         'loss.lpips_net=alex']


def _variant(text: str) -> tuple[str, list[str]]:
  name, _, body = text.partition(':')
  pairs = [p for p in _split(body) if p]
  return name, [f'--config.{p}' for p in pairs]


def _split(body: str) -> list[str]:
  """'a=1,b=(2,3)' -> ['a=1', 'b=(2,3)'] (commas inside brackets stay)."""
  out, depth, cur = [], 0, ''
  for ch in body:
    depth += ch in '([' and 1 or (ch in ')]' and -1 or 0)
    if ch == ',' and depth == 0:
      out.append(cur)
      cur = ''
    else:
      cur += ch
  return out + [cur]


def main(argv=None):
  from ae_jax import bench, config_lib
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--config', default='base')
  p.add_argument('--variant', action='append', default=[])
  p.add_argument('--families', action='store_true')
  p.add_argument('--lpips', action='store_true')
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--record', default=None)
  p.add_argument('--title', default='')
  args, overrides = p.parse_known_args(argv)
  variants, title = args.variant, args.title
  if args.families:
    variants, overrides = FAMILIES, FAMILY_CONFIG + overrides
    title = title or "each family's training step against the VAE's (model_families' dSprites MLP)"
  if args.lpips:
    args.config, variants = 'ae_photos', LPIPS
    title = title or 'the LPIPS training term against MSE (configs/ae_photos.py)'
  if not variants:
    p.error('name variants (--variant NAME:KEY=VALUE,...), or --families / --lpips')
  if args.record:
    bench.check_record_path(args.record)  # an earlier benchmark file only, before any work
  results = []
  # an untimed first measurement: the process's first compiled step runs slower (thread
  # pools, allocator), which would otherwise inflate the reference and shrink every ratio
  name, extra = _variant(variants[0])
  bench.measure(config_lib.load(args.config, overrides + ['--config.figures.enabled=False']
                                + extra), 2, 1, synthetic=True)
  for text in variants:
    name, extra = _variant(text)
    config = config_lib.load(args.config, overrides + ['--config.figures.enabled=False'] + extra)
    r = bench.measure(config, args.steps, args.warmup, synthetic=True)
    r = {'variant': name, 'overrides': extra, **r}
    r['ratio_to_reference'] = round(r['step_ms'] / results[0]['step_ms'], 3) if results else 1.0
    results.append(r)
    print(f'{name:16s} step {r["step_ms"]:9.2f} ms  x{r["ratio_to_reference"]:.2f}', flush=True)
  if args.record:
    command = 'python experiments/bench_variants.py ' + shlex.join(argv or sys.argv[1:])
    bench.write_record(bench.record(results, command, title), args.record)
    print(f'wrote {args.record}')


if __name__ == '__main__':
  main()
