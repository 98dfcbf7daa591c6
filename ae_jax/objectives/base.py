"""What every objective is made of: the inputs its terms function sees (`LossInputs`), its
declaration (`Objective`), and the static part a compiled step binds (`ObjectiveSpec`)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

from ae_jax.keys import Key


class LossInputs(NamedTuple):
  """What an objective's terms function sees (one member, one batch)."""
  x: Any              # [B, H, W, C] images in [0, 1]
  out: Any            # models.ModelOutput of the training forward pass (z sampled for a VAE)
  hp: dict            # this member's hyperparameters (sweep axes): scalars
  beta: Any           # the latent regulariser's weight, loss.beta after its warm-up
  loss: Any           # losses.LossSpec: the reconstruction loss's static settings
  settings: dict      # this objective's own static settings (Objective.settings)
  num_train: int      # training examples (beta-TCVAE's N)
  key: Any            # a PRNG key for the objective's own draws
  decode: Callable    # z -> (recon in [0, 1], logits): the decoder at these parameters
  latent_mask: Any    # [..., L] 0/1 of a latent-size sweep member, or None
  networks: Any       # the pretrained networks the extra terms need (LPIPS)
  critic: Callable | None = None  # FactorVAE: z -> the TC discriminator's logits [B, 2]
  params: Any = None  # the model's parameters (RAE's decoder penalty)


def _no_derived(config, members) -> dict:
  return {}


@dataclasses.dataclass(frozen=True)
class Objective:
  name: str
  doc: str
  kinds: tuple[str, ...]            # model kinds it trains
  terms: Callable                   # (LossInputs) -> {term: [B]}
  logged: tuple[str, ...] = ()      # its own terms in the metrics (registry names)
  keys: tuple[Key, ...] = ()        # its config keys, declared here (swept ones: its weights)
  critic: str = ''                  # '' | 'tc': a discriminator trained beside the model
  # why its estimate needs two or more examples in a batch ('' when it does not): its
  # training and evaluation batches must hold at least two (config_lib refuses fewer)
  pairs: str = ''
  # static settings computed from the config and the program's members (beyond its own
  # unswept keys), e.g. IWAE's largest sample count
  derived: Callable[[Any, list], dict] = _no_derived

  def settings(self, config, members) -> dict:
    """Its static settings: each of its own unswept keys by its last name (loss.tc_estimator
    -> 'tc_estimator'), plus what `derived` computes."""
    own = {k.name.rsplit('.', 1)[-1]: _value(config, k.name) for k in self.keys if not k.sweep}
    return {**own, **self.derived(config, members)}

  def spec(self, config, members) -> 'ObjectiveSpec':
    return ObjectiveSpec(self.name, tuple(sorted(self.settings(config, members).items())))


class ObjectiveSpec(NamedTuple):
  """The objective a compiled step trains with: its name and static settings, hashable."""
  name: str
  settings: tuple = ()  # ((name, value), ...), sorted

  def as_dict(self) -> dict:
    return dict(self.settings)


def _value(config, dotted: str):
  node = config
  for part in dotted.split('.'):
    node = node[part]
  return tuple(node) if isinstance(node, list) else node
