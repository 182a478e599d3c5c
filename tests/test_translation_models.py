"""Tests of ganzoo/models/translation.py (the pix2pix / CycleGAN networks)."""

import jax
import jax.numpy as jnp
import pytest

from ganzoo.models import translation


@pytest.mark.parametrize("name,size", [("unet_128", 128), ("resnet_6blocks", 32)])
def test_generator_output_shape(name, size):
  g = translation.define_G(name, output_nc=2, ngf=4, norm="batch", use_dropout=True)
  x = jnp.zeros((2, size, size, 3))
  variables = g.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x)
  y = g.apply(variables, x)
  assert y.shape == (2, size, size, 2)
