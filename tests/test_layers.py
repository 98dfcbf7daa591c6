"""The package's import graph is its layering (README "Architecture"): every `ae_jax`
import sits at the top of its module and points down. Read from the source (AST), so it
costs no import."""
import ast
import functools
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Bottom to top. A module imports only modules of lower layers, or of its own package in
# its own layer. `*.__main__` modules are command lines: the top.
LAYERS = (
    ('errors', 'keys', 'progress', 'preempt', 'memory', 'benchmark_files'),
    ('workdir', 'checkpoint', 'mesh', 'members'),
    ('data',),
    ('metrics.pca', 'metrics.spectrum', 'metrics.lpips', 'metrics.ms_ssim', 'metrics.distances',
     'metrics.sample_quality', 'metrics.disentanglement'),
    ('models', 'optim', 'adversarial', 'torch_models', 'interop_ldm', 'priors'),
    ('losses', 'cpu_policy', 'critic'),
    ('objectives',),
    ('metrics.core', 'metrics.likelihood', 'metrics.passes', 'metrics.registry', 'metrics'),
    ('schema',),
    ('config_values',),
    ('configs', 'sweep'),
    ('config_rules',),
    ('config_lib',),
    ('record', 'steps', 'prior_steps'),
    ('spec',),
    ('compile', 'prior_run'),
    ('inference', 'figures'),
    ('report', 'pythae_compare'),
    ('tracking', 'evaluate', 'latent'),
    ('training', 'codes', 'prior_grade'),
    ('stops', 'results', 'init_from'),
    ('cli', 'launch'),
    ('train', 'bench', 'export', 'prior_train'),
    ('interop',),
    ('studies',),
    ('main', 'docs', 'prior', 'ae_jax'),
)

# (module, imported module): function-level ae_jax imports, each for an optional extra.
FUNCTION_LEVEL = {
}


@functools.cache
def _modules() -> dict:
  out = {}
  for folder, _, files in os.walk(os.path.join(ROOT, 'ae_jax')):
    for f in files:
      if f.endswith('.py'):
        path = os.path.join(folder, f)
        name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
        out[name[:-len('.__init__')] if name.endswith('.__init__') else name] = path
  return out


def _layer(module: str) -> int:
  if module.endswith('.__main__'):
    return len(LAYERS)
  rest = module[len('ae_jax.'):] if module != 'ae_jax' else 'ae_jax'
  best = None
  for i, layer in enumerate(LAYERS):
    for entry in layer:
      if rest == entry or rest.startswith(entry + '.'):
        if best is None or len(entry) > best[1]:
          best = (i, len(entry))
  assert best is not None, f'{module} is in no layer of tests/test_layers.py'
  return best[0]


def _package(module: str) -> str:
  parts = module.split('.')
  return '.'.join(parts[:2])


def _imports(path: str):
  """(imported module, line, at the top?) of each ae_jax import of a file."""
  return _parsed(path, open(path).read())


@functools.cache
def _parsed(path: str, source: str) -> tuple:  # (path: the cache key with the text)
  return tuple(_walk(ast.parse(source)))


def _walk(tree):
  top = {id(n) for n in tree.body}
  top |= {id(s) for n in tree.body if isinstance(n, (ast.Try, ast.If)) for s in n.body}
  mods = _modules()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('ae_jax'):
      for a in node.names:
        full = f'{node.module}.{a.name}'
        yield (full if full in mods else node.module), node.lineno, id(node) in top
    elif isinstance(node, ast.Import):
      for a in node.names:
        if a.name.startswith('ae_jax'):
          yield a.name, node.lineno, id(node) in top


def test_every_module_is_placed_in_a_layer():
  for module in _modules():
    _layer(module)


def test_imports_point_down():
  upward = []
  for module, path in _modules().items():
    for target, line, _ in _imports(path):
      if target == module or module.startswith(target + '.'):
        continue  # a package's own __init__, imported by its submodules
      a, b = _layer(module), _layer(target)
      if b < a or (b == a and _package(module) == _package(target)):
        continue
      upward.append(f'{os.path.relpath(path, ROOT)}:{line}: {module} (layer {a}) imports '
                    f'{target} (layer {b})')
  assert not upward, 'imports that do not point down:\n' + '\n'.join(upward)


def test_ae_jax_imports_are_at_the_top_of_modules():
  inner = []
  for module, path in _modules().items():
    for target, line, at_top in _imports(path):
      if not at_top and (module, target) not in FUNCTION_LEVEL:
        inner.append(f'{os.path.relpath(path, ROOT)}:{line}: {module} imports {target} '
                     'inside a function')
  assert not inner, '\n'.join(inner)


def test_the_layer_test_catches_an_upward_import(tmp_path):
  """The checks above would see a violation: a model module importing the trainer."""
  bad = tmp_path / 'bad.py'
  bad.write_text('from ae_jax import train\n\ndef f():\n  from ae_jax import steps\n')
  found = list(_imports(str(bad)))
  assert ('ae_jax.train', 1, True) in found and ('ae_jax.steps', 4, False) in found
  assert _layer('ae_jax.train') > _layer('ae_jax.models.mlp')
