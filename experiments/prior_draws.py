"""How much a prior's sample FD moves between sample draws, beside the decoder's ceiling.

  python experiments/prior_draws.py --workdir runs/generation --model digits/ae \\
    [--priors gmm flow] [--draws 5] [--out docs/studies/generation_draws.json]

For one model of a `generation` study workdir (`python -m ae_jax.studies generation
--workdir runs/generation`), every named prior (default: each one under the model's
priors/) is graded as the study grades it (prior_grade: as many samples as the study's
prior.num_samples, against as many test images, in the dataset classifier's feature
space), once per seed 0 .. draws-1; the study's table holds seed 0's. Beside them, the
ceiling: the same score of the autoencoder's reconstructions of that many training images
(a different random subset per draw), i.e. of a prior that samples the training codes
themselves. It prints and writes (--out, appended to a JSON list) each row's per-draw FDs,
mean and standard deviation.
"""
import argparse
import json
import os
import sys

import numpy as np


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--workdir', required=True, help='a generation study workdir')
  p.add_argument('--model', required=True, help='a model key of the study, e.g. digits/ae')
  p.add_argument('--priors', nargs='*', default=None,
                 help='prior names under the model\'s priors/ (default: all)')
  p.add_argument('--draws', type=int, default=5)
  p.add_argument('--out', default=None, help='append the rows to this JSON file')
  args = p.parse_args(argv)
  from ae_jax import prior_grade, prior_run
  from ae_jax.inference import open_workdir
  from ae_jax.studies import STUDY_FILE, Study
  from ae_jax.studies import generation as g
  from ae_jax.workdir import write_json
  models = {m.key: m for m in g.MODELS}
  if args.model not in models:
    sys.exit(f'--model {args.model!r}: expected one of {", ".join(models)}')
  # the study as it was run: its budget and overrides, as study.json records them
  study_file = os.path.join(args.workdir, STUDY_FILE)
  if not os.path.isfile(study_file):
    sys.exit(f'--workdir {args.workdir}: no {STUDY_FILE} there; expected a generation study\'s '
             'workdir (python -m ae_jax.studies generation --workdir ...)')
  recorded = json.load(open(study_file))
  study = Study('generation', args.workdir, overrides=recorded.get('overrides', ()),
                budget=recorded.get('budget', 'full'))
  model = models[args.model]
  config, where = study.config(model), study.model_dir(model.key)
  trained = prior_run.names(where)
  priors = args.priors or trained
  unknown = [p for p in priors if p not in trained]
  if unknown:
    sys.exit(f'--priors {" ".join(unknown)}: not trained for {model.key}; its priors: '
             f'{", ".join(trained) or "none"}')
  dataset = study.source(model.key).dataset
  n = min(int(config.prior.num_samples), len(dataset.test['image']))
  real = np.asarray(dataset.test['image'][:n])
  spaces = prior_grade.feature_spaces(dataset, config.data)
  member = open_workdir(where, config=config).member(0)
  train = dataset.train['image']
  fds = {'ceiling (reconstructed training images)': [], **{name: [] for name in priors}}
  for seed in range(args.draws):
    pick = np.random.default_rng(seed).choice(len(train), n, replace=False)
    recon = np.asarray(member.reconstruct(np.asarray(train[pick])))
    fds['ceiling (reconstructed training images)'].append(
        prior_grade.score(real, recon, spaces)['fd_classifier'])
    for name in priors:
      fake = prior_grade.sample_images(member, n, seed, name)
      fds[name].append(prior_grade.score(real, fake, spaces)['fd_classifier'])
  kind = lambda name: (prior_run.PriorSpec.read(prior_run.folder(where, name)).kind
                       if name in priors else None)
  rows = [{'model': model.key, 'sampler': name, 'kind': kind(name), 'num_samples': n,
           'fd_per_draw': [round(float(v), 3) for v in values],
           'mean': round(float(np.mean(values)), 3), 'std': round(float(np.std(values)), 3)}
          for name, values in fds.items()]
  for r in rows:
    print(f"{r['model']:12s} {r['sampler']:42s} FD {r['mean']:7.2f} +- {r['std']:5.2f}  "
          f"draws {r['fd_per_draw']}")
  if args.out:
    kept = json.load(open(args.out)) if os.path.exists(args.out) else []
    command = 'python experiments/prior_draws.py ' + ' '.join(argv or sys.argv[1:])
    kept.append({'command': command, 'rows': rows})
    write_json(args.out, kept)


if __name__ == '__main__':
  main()
