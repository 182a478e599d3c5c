"""Latent-space tools for trained ganzoo generators: GAN inversion and interpretable directions.

  from ganzoo import latent
  gen, method, step = latent.from_run('workdirs/sg2_fm')            # or latent.from_method(method, state)
  res = latent.invert(gen, images, space='w+')                       # z | w | w+, batched, one jitted loop
  enc = latent.train_encoder(gen, rng); res = latent.encode_and_refine(gen, enc, images)
  d = latent.sefa(gen) | latent.ganspace(gen, rng) | latent.interfacegan(latents, scores)
      | latent.voynov_babenko(gen, rng)
  sheet = latent.edit_sheet(gen, d, base_latent, strengths)

CLI: `python -m ganzoo.latent invert|directions ...` (ganzoo/latent/__main__.py).
"""

from ganzoo.latent.directions import (Directions, edit_sheet, ganspace, interfacegan, linear_svm, pca,  # noqa: F401
                                      sample_latents, sefa, sefa_matrix, voynov_babenko)
from ganzoo.latent.encoder import TrainedEncoder, encode_and_refine, train_encoder  # noqa: F401
from ganzoo.latent.generator import LatentGenerator, from_method, from_run, w_stats  # noqa: F401
from ganzoo.latent.inversion import Inversion, InvertConfig, invert, invert_batched, synthesize  # noqa: F401
