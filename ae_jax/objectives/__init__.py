"""The math of the autoencoder families, as pure per-example functions: `tcvae` (beta-TCVAE's
KL decomposition), `mmd` (WAE-MMD's kernel penalty), `iwae` (the importance-weighted
training bound). The VQ-VAE quantiser and its two loss terms are a layer,
`ae_jax.models.quantizer`. Each function returns per-example terms [B] (or a batch
statistic whose per-example form averages to it); the caller weights and reduces.
"""
