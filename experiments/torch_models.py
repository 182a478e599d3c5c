"""PyTorch twins of ganzoo's DCGAN and SNGAN-ResNet training steps, for experiments/benchmark.py.

Same architectures as `ganzoo.models.dcgan` (Radford et al. 2016, arXiv:1511.06434) and
`ganzoo.models.sngan` 'sngan_resnet' (Miyato et al. 2018, arXiv:1802.05957, Table 4), with equal
parameter counts (asserted by the benchmark and tests/test_benchmark.py), in PyTorch's native
NCHW layout, and the same update rule as `ganzoo.steps`:

  per step: d_steps x [z ~ N(0, I); fake = G(z) (train-mode BN, no grad);
                       D loss on D(real), D(fake); Adam step on D]
            then 1 x  [fresh z; G loss on D(G(z)); Adam step on G (D's weights get no grads)].

Spectral normalization (SNGAN's D) is our own power iteration, as ganzoo does it: one iteration
per D update (u <- normalize(W^T normalize(W u)) under no_grad), W / sigma with sigma = v^T W u
differentiated through W, computed once per update and shared by the real and the fake call; G
updates use the stored u without updating it. Initializations differ from ganzoo's (timing does not
depend on them). Nothing here is imported by ganzoo; torch is only needed for the benchmark.
"""

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------------------------------------
# DCGAN (32x32): G widths 4*g_ch, 2*g_ch, g_ch; D widths d_ch, 2*d_ch, 4*d_ch.

class DCGANGenerator(nn.Module):
  """z [N, z_dim] -> [N, C, 32, 32]: Dense -> BN-ReLU -> 2 x (ConvT4s2-BN-ReLU) -> ConvT4s2 -> tanh."""

  def __init__(self, z_dim: int = 100, g_ch: int = 128, channels: int = 3):
    super().__init__()
    self.width = 4 * g_ch
    self.project = nn.Linear(z_dim, 4 * 4 * self.width, bias=False)
    self.bn_project = nn.BatchNorm2d(self.width, momentum=0.1, eps=1e-5)
    self.up = nn.ModuleList()
    self.bns = nn.ModuleList()
    w = self.width
    for _ in range(2):
      self.up.append(nn.ConvTranspose2d(w, w // 2, 4, 2, 1, bias=False))
      self.bns.append(nn.BatchNorm2d(w // 2))
      w //= 2
    self.out = nn.ConvTranspose2d(w, channels, 4, 2, 1, bias=False)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    h = self.project(z).view(z.shape[0], self.width, 4, 4)
    h = F.relu(self.bn_project(h))
    for up, bn in zip(self.up, self.bns):
      h = F.relu(bn(up(h)))
    return torch.tanh(self.out(h))


class DCGANDiscriminator(nn.Module):
  """[N, C, 32, 32] -> logits [N]: Conv4s2 (bias) -> LReLU -> 2 x (Conv4s2-BN-LReLU) -> Dense(1)."""

  def __init__(self, d_ch: int = 128, channels: int = 3):
    super().__init__()
    self.conv0 = nn.Conv2d(channels, d_ch, 4, 2, 1, bias=True)
    self.conv1 = nn.Conv2d(d_ch, 2 * d_ch, 4, 2, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(2 * d_ch)
    self.conv2 = nn.Conv2d(2 * d_ch, 4 * d_ch, 4, 2, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(4 * d_ch)
    self.out = nn.Linear(4 * 4 * 4 * d_ch, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = F.leaky_relu(self.conv0(x), 0.2)
    h = F.leaky_relu(self.bn1(self.conv1(h)), 0.2)
    h = F.leaky_relu(self.bn2(self.conv2(h)), 0.2)
    return self.out(h.flatten(1))[:, 0]


# ---------------------------------------------------------------------------------------------
# SNGAN ResNet (32x32).

def _up(x: torch.Tensor) -> torch.Tensor:
  return F.interpolate(x, scale_factor=2, mode="nearest")


class GBlock(nn.Module):
  """BN-ReLU-up-Conv3-BN-ReLU-Conv3 + up-Conv1 shortcut (biases as the chainer code)."""

  def __init__(self, ch: int):
    super().__init__()
    self.bn1 = nn.BatchNorm2d(ch)
    self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1)
    self.bn2 = nn.BatchNorm2d(ch)
    self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1)
    self.shortcut = nn.Conv2d(ch, ch, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = self.conv1(_up(F.relu(self.bn1(x))))
    h = self.conv2(F.relu(self.bn2(h)))
    return h + _up(self.shortcut(x))


class SNGANResNetGenerator(nn.Module):
  """z -> Dense(4*4*g_ch) -> 3 GBlocks -> BN-ReLU -> Conv3 (C) -> tanh."""

  def __init__(self, z_dim: int = 128, g_ch: int = 256, channels: int = 3):
    super().__init__()
    self.g_ch = g_ch
    self.project = nn.Linear(z_dim, 4 * 4 * g_ch)
    self.blocks = nn.Sequential(*[GBlock(g_ch) for _ in range(3)])
    self.bn_out = nn.BatchNorm2d(g_ch)
    self.out = nn.Conv2d(g_ch, channels, 3, 1, 1)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    h = self.project(z).view(z.shape[0], self.g_ch, 4, 4)
    h = self.blocks(h)
    return torch.tanh(self.out(F.relu(self.bn_out(h))))


class DBlock(nn.Module):
  """[ReLU-Conv3-ReLU-Conv3-(pool)] + [Conv1-(pool)]; optimized: [Conv3-ReLU-Conv3-pool] + [pool-Conv1]."""

  def __init__(self, cin: int, cout: int, downsample: bool, optimized: bool = False):
    super().__init__()
    self.optimized, self.downsample = optimized, downsample
    hidden = cout if optimized else cin
    self.conv1 = nn.Conv2d(cin, hidden, 3, 1, 1)
    self.conv2 = nn.Conv2d(hidden, cout, 3, 1, 1)
    self.shortcut = nn.Conv2d(cin, cout, 1) if (optimized or downsample or cin != cout) else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.optimized:
      h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
      return h + self.shortcut(F.avg_pool2d(x, 2))
    h = self.conv2(F.relu(self.conv1(F.relu(x))))
    if self.downsample:
      h = F.avg_pool2d(h, 2)
    sc = x
    if self.shortcut is not None:
      sc = self.shortcut(sc)
      if self.downsample:
        sc = F.avg_pool2d(sc, 2)
    return h + sc


class SNGANResNetDiscriminator(nn.Module):
  """Optimized block (down) -> DBlock (down) -> 2 DBlocks -> ReLU -> global sum -> Dense(1)."""

  def __init__(self, d_ch: int = 128, channels: int = 3):
    super().__init__()
    self.blocks = nn.Sequential(DBlock(channels, d_ch, True, optimized=True), DBlock(d_ch, d_ch, True),
                                DBlock(d_ch, d_ch, False), DBlock(d_ch, d_ch, False))
    self.out = nn.Linear(d_ch, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = F.relu(self.blocks(x)).sum(dim=(2, 3))
    return self.out(h)[:, 0]


# ---------------------------------------------------------------------------------------------
# Spectral normalization (power iteration on W reshaped to (out, -1), as ganzoo on (-1, out)).

class SpectralNorm:
  """W / sigma(W) for every weight with ndim >= 2 of `module` (Miyato et al. 2018, Algorithm 1)."""

  def __init__(self, module: nn.Module, eps: float = 1e-12):
    self.module, self.eps = module, eps
    self.u = {n: F.normalize(torch.randn(w.shape[0]), dim=0, eps=eps)
              for n, w in module.named_parameters() if w.ndim >= 2}

  def params(self, update: bool) -> dict[str, torch.Tensor]:
    out = {}
    for name, w in self.module.named_parameters():
      if name not in self.u:
        out[name] = w
        continue
      w_mat = w.reshape(w.shape[0], -1)
      with torch.no_grad():
        u = self.u[name]
        v = F.normalize(w_mat.t() @ u, dim=0, eps=self.eps)
        if update:
          u = F.normalize(w_mat @ v, dim=0, eps=self.eps)
          self.u[name] = u
      sigma = u @ (w_mat @ v)
      out[name] = w / sigma.clamp_min(self.eps)
    return out


def _apply(module: nn.Module, sn: SpectralNorm | None, update: bool) -> Callable[[torch.Tensor], torch.Tensor]:
  """module(x), with spectrally normalized weights (computed once here) when `sn` is given."""
  if sn is None:
    return module
  params = sn.params(update)
  return lambda x: torch.func.functional_call(module, params, (x,))


# ---------------------------------------------------------------------------------------------
# Losses (logits in, scalar out).

def ns_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
  return F.softplus(-real).mean() + F.softplus(fake).mean()


def ns_g_loss(fake: torch.Tensor) -> torch.Tensor:
  return F.softplus(-fake).mean()


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
  return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g_loss(fake: torch.Tensor) -> torch.Tensor:
  return -fake.mean()


# ---------------------------------------------------------------------------------------------
# The training step.

class Trainer:
  """`step(reals)`: len(reals) D updates then one G update, as ganzoo.steps does.

  `reuse_fakes=True` is ganzoo's `train.reuse_fakes` and the PyTorch DCGAN example's rule
  (pytorch/examples dcgan/main.py): D's last update keeps its fakes' graph (`fake = G(z)` with
  grad, D on `fake.detach()`) and G's update backpropagates `g_loss(D(fake))` through it, one G
  forward fewer per step.
  """

  def __init__(self, G: nn.Module, D: nn.Module, z_dim: int, batch_size: int, d_loss, g_loss,
               adam: dict, sn: bool = False, num_updates: int | None = None, d_steps: int = 1,
               reuse_fakes: bool = False):
    self.G, self.D, self.z_dim, self.batch_size = G.train(), D.train(), z_dim, batch_size
    self.reuse_fakes, self._kept = reuse_fakes, None
    self.d_loss, self.g_loss = d_loss, g_loss
    self.opt_g = torch.optim.Adam(G.parameters(), **adam)
    self.opt_d = torch.optim.Adam(D.parameters(), **adam)
    self.sched = []
    if num_updates:  # SNGAN: learning rate decayed linearly to 0 (optax.linear_schedule)
      for opt, n in ((self.opt_g, num_updates), (self.opt_d, num_updates * d_steps)):
        self.sched.append(torch.optim.lr_scheduler.LambdaLR(opt, lambda i, n=n: max(0.0, 1.0 - i / n)))
    self.sn = SpectralNorm(D) if sn else None

  def d_update(self, real: torch.Tensor, keep: bool = False) -> torch.Tensor:
    z = torch.randn(real.shape[0], self.z_dim)
    if keep:   # the fakes G's update will reuse: their graph is kept
      self._kept = fake = self.G(z)
    else:
      with torch.no_grad():
        fake = self.G(z)
    d = _apply(self.D, self.sn, update=True)
    loss = self.d_loss(d(real), d(fake.detach()))
    self.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    self.opt_d.step()
    return loss.detach()

  def g_update(self) -> torch.Tensor:
    for p in self.D.parameters():
      p.requires_grad_(False)
    d = _apply(self.D, self.sn, update=False)
    if self._kept is not None:
      fake, self._kept = self._kept, None
    else:
      fake = self.G(torch.randn(self.batch_size, self.z_dim))
    loss = self.g_loss(d(fake))
    self.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    self.opt_g.step()
    for p in self.D.parameters():
      p.requires_grad_(True)
    return loss.detach()

  def step(self, reals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for i, real in enumerate(reals):
      d_loss = self.d_update(real, keep=self.reuse_fakes and i == len(reals) - 1)
    g_loss = self.g_update()
    for s in self.sched:
      s.step()
    return d_loss, g_loss


def param_count(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def build(name: str, batch_size: int = 64, channels: int = 3, tiny: bool = False,
          reuse_fakes: bool = False) -> tuple[Trainer, int]:
  """(Trainer, d_steps) for 'dcgan' (configs/dcgan.py) or 'sngan' (configs/sngan.py) at 32x32."""
  if name == "dcgan":
    ch = 8 if tiny else 128
    G, D = DCGANGenerator(100, ch, channels), DCGANDiscriminator(ch, channels)
    adam = dict(lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    return Trainer(G, D, 100, batch_size, ns_d_loss, ns_g_loss, adam, reuse_fakes=reuse_fakes), 1
  if name == "sngan":
    g_ch, d_ch = (16, 16) if tiny else (256, 128)
    G, D = SNGANResNetGenerator(128, g_ch, channels), SNGANResNetDiscriminator(d_ch, channels)
    adam = dict(lr=2e-4, betas=(0.0, 0.9), eps=1e-8)
    return Trainer(G, D, 128, batch_size, hinge_d_loss, hinge_g_loss, adam, sn=True,
                   num_updates=50_000, d_steps=5, reuse_fakes=reuse_fakes), 5
  raise ValueError(f"no PyTorch twin for {name!r}; use dcgan or sngan")
