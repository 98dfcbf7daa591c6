"""The shipped configs: `--config NAME` runs ae_jax/configs/NAME.py from any folder, and
`--config configs/NAME.py` from a checkout (configs/ links here). A config of your own
starts from the base: `from ae_jax.configs import base; config = base.get_config()`."""
