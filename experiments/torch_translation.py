"""PyTorch twins of ganzoo's pix2pix and CycleGAN networks and training steps, for experiments/benchmark.py.

The networks are those of `ganzoo.models.translation`, i.e. the layer lists of the authors' code
(junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py: UnetGenerator, ResnetGenerator,
NLayerDiscriminator, PixelDiscriminator), written here in PyTorch's NCHW layout with the module
names of ganzoo's param trees (`unet.submodule.down`, `block_3.conv_0`, ...), so that
`load_flax_params` copies a ganzoo param tree into a twin and tests/test_translation_models.py can
check that both compute the same function. Parameter counts are asserted equal by the benchmark.

The training steps follow the reference's `optimize_parameters`:
- pix2pix (models/pix2pix_model.py; Isola et al. 2017, arXiv:1611.07004): fake_B = G(A); D step on
  0.5 (BCE(D(A, fake_B.detach()), 0) + BCE(D(A, B), 1)) with D on the channel concatenation; then the
  G step on BCE(D(A, fake_B), 1) + 100 |fake_B - B|_1 (D's weights get no gradients). Adam 2e-4
  (0.5, 0.999), the vanilla GAN loss as BCE with logits.
- CycleGAN (models/cycle_gan_model.py; Zhu et al. 2017, arXiv:1703.10593): fake_B = G_A(A),
  rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A); one G step for both generators on
  LSGAN (D_A(fake_B) - 1)^2 + (D_B(fake_A) - 1)^2 + 10 (|rec_A - A| + |rec_B - B|) + 0.5 * 10
  (|G_A(B) - B| + |G_B(A) - A|); then one D step for both discriminators on
  0.5 ((D(real) - 1)^2 + D(pool(fake).detach())^2) each. The image pool (50 past fakes, 50/50 swap)
  is `ImagePool`; `pool_size=0` omits it (fakes go straight to D), which changes no FLOPs: the pool
  is a copy and a coin flip per image.

Initialization is the reference's N(0, 0.02) (BN scales N(1, 0.02)); timing does not depend on it.
Nothing here is imported by ganzoo; torch is only needed for the benchmark and its tests.
"""

import random
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _norm(kind: str, channels: int) -> nn.Module:
  """The reference's get_norm_layer: BatchNorm2d(affine), InstanceNorm2d(affine=False, no stats), identity."""
  if kind == "batch":
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
  if kind == "instance":
    return nn.InstanceNorm2d(channels, eps=1e-5, affine=False, track_running_stats=False)
  if kind == "none":
    return nn.Identity()
  raise ValueError(f"unknown norm {kind!r}")


class UnetBlock(nn.Module):
  """One U-Net level and its inner levels; `chain` = ((outer_nc, inner_nc, dropout), ...) outer to inner."""

  def __init__(self, chain, input_nc: int, outermost: bool, norm: str):
    super().__init__()
    outer_nc, inner_nc, use_dropout = chain[0]
    self.outermost, self.innermost = outermost, len(chain) == 1
    use_bias = norm == "instance"
    self.down = nn.Conv2d(input_nc, inner_nc, 4, 2, 1, bias=use_bias)
    self.down_norm = None if (outermost or self.innermost) else _norm(norm, inner_nc)
    self.submodule = None if self.innermost else UnetBlock(chain[1:], inner_nc, False, norm)
    up_in = inner_nc if self.innermost else 2 * inner_nc
    self.up = nn.ConvTranspose2d(up_in, outer_nc, 4, 2, 1, bias=outermost or use_bias)
    self.up_norm = None if outermost else _norm(norm, outer_nc)
    self.dropout = nn.Dropout(0.5) if use_dropout else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = x if self.outermost else F.leaky_relu(x, 0.2)
    h = self.down(h)
    if self.down_norm is not None:
      h = self.down_norm(h)
    if self.submodule is not None:
      h = self.submodule(h)
    h = self.up(F.relu(h))
    if self.outermost:
      return torch.tanh(h)
    h = self.up_norm(h)
    if self.dropout is not None:
      h = self.dropout(h)
    return torch.cat([x, h], 1)


class UnetGenerator(nn.Module):
  def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64, norm: str = "batch",
               use_dropout: bool = True):
    super().__init__()
    g = ngf
    chain = ((output_nc, g, False), (g, 2 * g, False), (2 * g, 4 * g, False), (4 * g, 8 * g, False))
    chain += ((8 * g, 8 * g, use_dropout),) * (num_downs - 5) + ((8 * g, 8 * g, False),)
    self.unet = UnetBlock(chain, input_nc, True, norm)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.unet(x)


class ResnetBlock(nn.Module):
  def __init__(self, dim: int, norm: str, use_dropout: bool):
    super().__init__()
    use_bias = norm == "instance"
    self.conv_0 = nn.Conv2d(dim, dim, 3, bias=use_bias)
    self.norm_0 = _norm(norm, dim)
    self.dropout = nn.Dropout(0.5) if use_dropout else None
    self.conv_1 = nn.Conv2d(dim, dim, 3, bias=use_bias)
    self.norm_1 = _norm(norm, dim)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = F.relu(self.norm_0(self.conv_0(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
    if self.dropout is not None:
      h = self.dropout(h)
    return x + self.norm_1(self.conv_1(F.pad(h, (1, 1, 1, 1), mode="reflect")))


class ResnetGenerator(nn.Module):
  def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9, norm: str = "instance",
               use_dropout: bool = False):
    super().__init__()
    use_bias = norm == "instance"
    g = ngf
    self.conv_in = nn.Conv2d(input_nc, g, 7, bias=use_bias)
    self.norm_in = _norm(norm, g)
    for i in range(2):
      setattr(self, f"down_{i}", nn.Conv2d(g * 2 ** i, g * 2 ** (i + 1), 3, 2, 1, bias=use_bias))
      setattr(self, f"down_norm_{i}", _norm(norm, g * 2 ** (i + 1)))
    self.n_blocks = n_blocks
    for i in range(n_blocks):
      setattr(self, f"block_{i}", ResnetBlock(4 * g, norm, use_dropout))
    for i in range(2):
      setattr(self, f"up_{i}", nn.ConvTranspose2d(g * 2 ** (2 - i), g * 2 ** (1 - i), 3, 2, 1, output_padding=1,
                                                  bias=use_bias))
      setattr(self, f"up_norm_{i}", _norm(norm, g * 2 ** (1 - i)))
    self.conv_out = nn.Conv2d(g, output_nc, 7)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = F.relu(self.norm_in(self.conv_in(F.pad(x, (3, 3, 3, 3), mode="reflect"))))
    for i in range(2):
      h = F.relu(getattr(self, f"down_norm_{i}")(getattr(self, f"down_{i}")(h)))
    for i in range(self.n_blocks):
      h = getattr(self, f"block_{i}")(h)
    for i in range(2):
      h = F.relu(getattr(self, f"up_norm_{i}")(getattr(self, f"up_{i}")(h)))
    return torch.tanh(self.conv_out(F.pad(h, (3, 3, 3, 3), mode="reflect")))


class NLayerDiscriminator(nn.Module):
  def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
    super().__init__()
    use_bias = norm == "instance"
    self.n_layers = n_layers
    self.conv_0 = nn.Conv2d(input_nc, ndf, 4, 2, 1)
    prev = ndf
    for n in range(1, n_layers + 1):
      width = ndf * min(2 ** n, 8)
      setattr(self, f"conv_{n}", nn.Conv2d(prev, width, 4, 2 if n < n_layers else 1, 1, bias=use_bias))
      setattr(self, f"norm_{n}", _norm(norm, width))
      prev = width
    self.conv_out = nn.Conv2d(prev, 1, 4, 1, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = F.leaky_relu(self.conv_0(x), 0.2)
    for n in range(1, self.n_layers + 1):
      h = F.leaky_relu(getattr(self, f"norm_{n}")(getattr(self, f"conv_{n}")(h)), 0.2)
    return self.conv_out(h)


class PixelDiscriminator(nn.Module):
  def __init__(self, input_nc: int, ndf: int = 64, norm: str = "batch"):
    super().__init__()
    use_bias = norm == "instance"
    self.conv_0 = nn.Conv2d(input_nc, ndf, 1)
    self.conv_1 = nn.Conv2d(ndf, 2 * ndf, 1, bias=use_bias)
    self.norm_1 = _norm(norm, 2 * ndf)
    self.conv_out = nn.Conv2d(2 * ndf, 1, 1, bias=use_bias)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = F.leaky_relu(self.conv_0(x), 0.2)
    return self.conv_out(F.leaky_relu(self.norm_1(self.conv_1(h)), 0.2))


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
  """The reference's init_weights('normal'): conv weights N(0, gain), biases 0, BN scales N(1, gain)."""
  for m in net.modules():
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
      nn.init.normal_(m.weight, 0.0, gain)
      if m.bias is not None:
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
      nn.init.normal_(m.weight, 1.0, gain)
      nn.init.zeros_(m.bias)
  return net


def define_G(name: str, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch",
             use_dropout: bool = False) -> nn.Module:
  if name in ("unet_256", "unet_128"):
    net = UnetGenerator(input_nc, output_nc, 8 if name == "unet_256" else 7, ngf, norm, use_dropout)
  elif name in ("resnet_9blocks", "resnet_6blocks"):
    net = ResnetGenerator(input_nc, output_nc, ngf, 9 if name == "resnet_9blocks" else 6, norm, use_dropout)
  else:
    raise ValueError(f"unknown generator {name!r}")
  return init_weights(net)


def define_D(name: str, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> nn.Module:
  if name in ("basic", "n_layers"):
    net = NLayerDiscriminator(input_nc, ndf, 3 if name == "basic" else n_layers, norm)
  elif name == "pixel":
    net = PixelDiscriminator(input_nc, ndf, norm)
  else:
    raise ValueError(f"unknown discriminator {name!r}")
  return init_weights(net)


def param_count(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def load_flax_params(net: nn.Module, params: Any, batch_stats: Any = None) -> nn.Module:
  """Copies a ganzoo (flax) param tree of the same network into the twin, in place.

  Conv kernels (kh, kw, Cin, Cout) become torch's (Cout, Cin, kh, kw); transposed-conv kernels
  (flax's layout, spatially flipped against torch's) become (Cin, Cout, kh, kw) flipped back;
  BatchNorm scale/bias/mean/var become weight/bias/running_mean/running_var.
  """
  def walk(tree, prefix):
    for key, value in tree.items():
      if isinstance(value, dict) or hasattr(value, "items"):
        yield from walk(value, prefix + (key,))
      else:
        yield prefix, key, np.asarray(value)

  state = net.state_dict()
  new = {}
  for path, leaf, value in walk(params, ()):
    module = net.get_submodule(".".join(path))
    if isinstance(module, nn.ConvTranspose2d) and leaf == "kernel":
      new[".".join(path) + ".weight"] = value[::-1, ::-1].transpose(2, 3, 0, 1)
    elif leaf == "kernel":
      new[".".join(path) + ".weight"] = value.transpose(3, 2, 0, 1)
    elif isinstance(module, nn.BatchNorm2d) and leaf == "scale":
      new[".".join(path) + ".weight"] = value
    else:
      new[".".join(path) + "." + leaf] = value
  for path, leaf, value in walk(batch_stats or {}, ()):
    new[".".join(path) + ".running_" + leaf] = value
  missing = set(k for k in state if not k.endswith("num_batches_tracked")) - set(new)
  if missing or set(new) - set(state):
    raise ValueError(f"param trees differ: missing {sorted(missing)[:5]}, unexpected {sorted(set(new) - set(state))[:5]}")
  with torch.no_grad():
    for key, value in new.items():
      state[key].copy_(torch.from_numpy(np.array(value, copy=True)).to(state[key].dtype))
  return net


def _adam(params) -> torch.optim.Adam:
  return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class Pix2PixTrainer:
  """The reference's Pix2PixModel.optimize_parameters (gan_mode 'vanilla', lambda_L1 100), AtoB."""

  def __init__(self, G: nn.Module, D: nn.Module, lambda_l1: float = 100.0):
    self.G, self.D, self.lambda_l1 = G, D, lambda_l1
    self.opt_g, self.opt_d = _adam(G.parameters()), _adam(D.parameters())
    self.G.train()
    self.D.train()

  def step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    fake_b = self.G(real_a)
    # D: fake pairs (detached) and real pairs.
    for p in self.D.parameters():
      p.requires_grad_(True)
    self.opt_d.zero_grad(set_to_none=True)
    pred_fake = self.D(torch.cat([real_a, fake_b.detach()], 1))
    pred_real = self.D(torch.cat([real_a, real_b], 1))
    d_loss = 0.5 * (F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake))
                    + F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real)))
    d_loss.backward()
    self.opt_d.step()
    # G: fool D, plus L1 to the target.
    for p in self.D.parameters():
      p.requires_grad_(False)
    self.opt_g.zero_grad(set_to_none=True)
    pred = self.D(torch.cat([real_a, fake_b], 1))
    g_loss = (F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred))
              + self.lambda_l1 * F.l1_loss(fake_b, real_b))
    g_loss.backward()
    self.opt_g.step()
    return d_loss.detach(), g_loss.detach()


class ImagePool:
  """The reference's util/image_pool.ImagePool: up to `size` past fakes; once full, each query image is
  swapped with a random stored one with probability 1/2 (the stored one is returned)."""

  def __init__(self, size: int, seed: int = 0):
    self.size, self.images, self.rng = size, [], random.Random(seed)

  def query(self, images: torch.Tensor) -> torch.Tensor:
    if self.size == 0:
      return images
    out = []
    for image in images.detach():
      image = image.unsqueeze(0)
      if len(self.images) < self.size:
        self.images.append(image)
        out.append(image)
      elif self.rng.random() > 0.5:
        i = self.rng.randint(0, self.size - 1)
        out.append(self.images[i].clone())
        self.images[i] = image
      else:
        out.append(image)
    return torch.cat(out, 0)


class CycleGANTrainer:
  """The reference's CycleGANModel.optimize_parameters (lsgan, lambda_A = lambda_B = 10, lambda_identity 0.5)."""

  def __init__(self, G_A: nn.Module, G_B: nn.Module, D_A: nn.Module, D_B: nn.Module, pool_size: int = 50,
               lambda_cycle: float = 10.0, lambda_identity: float = 0.5):
    self.G_A, self.G_B, self.D_A, self.D_B = G_A, G_B, D_A, D_B
    self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity
    self.opt_g = _adam(list(G_A.parameters()) + list(G_B.parameters()))
    self.opt_d = _adam(list(D_A.parameters()) + list(D_B.parameters()))
    self.pool_a, self.pool_b = ImagePool(pool_size, 0), ImagePool(pool_size, 1)
    for net in (G_A, G_B, D_A, D_B):
      net.train()

  @property
  def G(self) -> nn.ModuleList:
    return nn.ModuleList([self.G_A, self.G_B])

  @property
  def D(self) -> nn.ModuleList:
    return nn.ModuleList([self.D_A, self.D_B])

  @staticmethod
  def _ls(pred: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(pred, torch.full_like(pred, target))

  def step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    fake_b = self.G_A(real_a)
    rec_a = self.G_B(fake_b)
    fake_a = self.G_B(real_b)
    rec_b = self.G_A(fake_a)
    # G_A and G_B, with the discriminators frozen.
    for p in list(self.D_A.parameters()) + list(self.D_B.parameters()):
      p.requires_grad_(False)
    self.opt_g.zero_grad(set_to_none=True)
    lam_idt = self.lambda_cycle * self.lambda_identity
    loss_idt = lam_idt * (F.l1_loss(self.G_A(real_b), real_b) + F.l1_loss(self.G_B(real_a), real_a))
    loss_gan = self._ls(self.D_A(fake_b), 1.0) + self._ls(self.D_B(fake_a), 1.0)
    loss_cycle = self.lambda_cycle * (F.l1_loss(rec_a, real_a) + F.l1_loss(rec_b, real_b))
    g_loss = loss_gan + loss_cycle + loss_idt
    g_loss.backward()
    self.opt_g.step()
    # D_A (judges domain B) and D_B (judges domain A), on pooled fakes.
    for p in list(self.D_A.parameters()) + list(self.D_B.parameters()):
      p.requires_grad_(True)
    self.opt_d.zero_grad(set_to_none=True)
    fb, fa = self.pool_b.query(fake_b), self.pool_a.query(fake_a)
    d_a = 0.5 * (self._ls(self.D_A(real_b), 1.0) + self._ls(self.D_A(fb.detach()), 0.0))
    d_b = 0.5 * (self._ls(self.D_B(real_a), 1.0) + self._ls(self.D_B(fa.detach()), 0.0))
    d_a.backward()
    d_b.backward()
    self.opt_d.step()
    return (d_a + d_b).detach(), g_loss.detach()


# The benchmark's sizes: the published networks, and tiny ones that only check the plumbing.
SIZES = {"paper": dict(ngf=64, ndf=64), "tiny": dict(ngf=4, ndf=4)}


def build(name: str, tiny: bool = False, pool_size: int = 50, channels: int = 3):
  """'pix2pix': unet_256 (batch norm, dropout) + the 70x70 D on 2 * channels; 'cyclegan': two
  resnet_9blocks (instance norm) + two 70x70 Ds (instance norm). Returns the trainer."""
  size = SIZES["tiny" if tiny else "paper"]
  if name == "pix2pix":
    G = define_G("unet_256", channels, channels, size["ngf"], "batch", use_dropout=True)
    D = define_D("basic", 2 * channels, size["ndf"], norm="batch")
    return Pix2PixTrainer(G, D)
  if name == "cyclegan":
    gs = [define_G("resnet_9blocks", channels, channels, size["ngf"], "instance") for _ in range(2)]
    ds = [define_D("basic", channels, size["ndf"], norm="instance") for _ in range(2)]
    return CycleGANTrainer(*gs, *ds, pool_size=pool_size)
  raise ValueError(f"unknown translation model {name!r}")
