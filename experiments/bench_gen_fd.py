"""What the in-training generation signal costs: the `gen_fd` pass (a 10-component GMM
fitted to 2,000 training codes, 500 samples decoded and scored against 500 test images in
the dataset classifier's feature space) against a training epoch of the same run.

  python experiments/bench_gen_fd.py [--config fashion_mnist_vae] [--epochs 3] \\
    [--record docs/benchmarks/DATE-cpu-gen-fd-cost.json]

It trains the config (default: Fashion-MNIST's conv VAE, 20,000 training images) for
--epochs epochs with `gen_fd` evaluated at every epoch, and reads the run's own clock from
its summary.json: the seconds of training per epoch (after the first, which compiles) and of
each evaluation's gen_fd pass. The ratio pass / epoch is what keeping it on costs, per
evaluation.
"""
import argparse
import json
import os
import sys
import tempfile


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--config', default='fashion_mnist_vae')
  p.add_argument('--epochs', type=int, default=3)
  p.add_argument('--num-examples', type=int, default=20000)
  p.add_argument('--record', default=None, help='write a benchmark file here')
  args = p.parse_args(argv)
  from ae_jax import bench, config_lib
  from ae_jax.metrics import registry
  from ae_jax.train import train_and_evaluate
  config = config_lib.load(args.config, [
      f'--config.train.num_epochs={args.epochs}', '--config.train.eval_every=1',
      f'--config.data.num_examples={args.num_examples}', '--config.progress=False',
      "--config.eval.metrics=('loss','gen_fd')", '--config.figures.enabled=False',
      '--config.log.tensorboard=False'])
  with tempfile.TemporaryDirectory() as tmp:
    train_and_evaluate(config, os.path.join(tmp, 'w'))
    summary = json.load(open(os.path.join(tmp, 'w', 'summary.json')))
  label = registry.get('gen_fd').label
  pass_s = summary['seconds']['passes'][label]
  per_eval = pass_s / args.epochs
  result = {'name': 'gen_fd pass per evaluation vs a training epoch', 'model': args.config,
            'epoch_s': round(summary['epoch_s'], 2), 'gen_fd_s': round(per_eval, 2),
            'ratio_to_epoch': round(per_eval / summary['epoch_s'], 3),
            'evaluations': args.epochs, 'train_images': args.num_examples,
            'gen_fd': summary['members'][0]['eval'].get('gen_fd')}
  print(json.dumps(result))
  if args.record:
    command = 'python experiments/bench_gen_fd.py ' + ' '.join(sys.argv[1:])
    bench.write_record(bench.record([result], command, 'the gen_fd generation signal against '
                                    'a training epoch'), args.record)


if __name__ == '__main__':
  main()
