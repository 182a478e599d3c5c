"""A PyTorch twin of ganzoo's Real NVP (ganzoo/models/realnvp.py, arXiv:1605.08803) for the speed benchmark.

  python experiments/torch_realnvp.py          # builds the CIFAR-10 network, asserts its parameter count

The same layers and parameter count as the Flax module (asserted against `EXPECTED_CIFAR10_PARAMS`,
tests/test_realnvp.py's count from the layer list; experiments/benchmark.py asserts it against the
ganzoo state too): weight-normalized convolutions (v, g where the reference has a scale, bias), the
s/t ResNets with batch norm (bias only), checkerboard and channel affine couplings with s = c tanh(raw),
the couplings' output batch normalization with its log-det (no parameters), squeeze, the 2-scale
factor-out, logit pre-processing, and the training step of the `realnvp` family: uniform dequantization,
mean NLL in nats + 5e-5 * (sum of the squared weight-norm scales and c's), Adam(1e-3). NCHW layout, as
PyTorch's convolutions want; the twin exists for timing, not for training runs.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

EXPECTED_CIFAR10_PARAMS = 19_609_545


class WNConv(nn.Module):
  def __init__(self, cin, cout, k, scale=True, bias=True):
    super().__init__()
    self.v = nn.Parameter(torch.randn(cout, cin, k, k) * 0.05)
    self.g = nn.Parameter(torch.ones(cout)) if scale else None
    self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
    self.pad = k // 2

  def forward(self, x):
    w = self.v * torch.rsqrt((self.v * self.v).sum(dim=(1, 2, 3), keepdim=True))
    if self.g is not None:
      w = w * self.g.view(-1, 1, 1, 1)
    return F.conv2d(x, w, self.bias, padding=self.pad)


class BN(nn.Module):
  """Batch norm without a scale (the reference's `scale=False`): a learned bias only."""

  def __init__(self, c, eps=1e-4):
    super().__init__()
    self.bn = nn.BatchNorm2d(c, eps=eps, momentum=0.1, affine=False)
    self.bias = nn.Parameter(torch.zeros(c))

  def forward(self, x):
    return self.bn(x) + self.bias.view(1, -1, 1, 1)


class ResNet(nn.Module):
  def __init__(self, din, dim, dout, blocks):
    super().__init__()
    self.h_in = WNConv(din, dim, 3, scale=False)
    self.skip_in = WNConv(dim, dim, 1)
    self.blocks = nn.ModuleList()
    for _ in range(blocks):
      self.blocks.append(nn.ModuleList([BN(dim), WNConv(dim, dim, 3, scale=False, bias=False), BN(dim),
                                        WNConv(dim, dim, 3), WNConv(dim, dim, 1)]))
    self.bn_out = BN(dim)
    self.out = WNConv(dim, dout, 1)

  def forward(self, x):
    h = self.h_in(x)
    out = self.skip_in(h)
    for bn0, c0, bn1, c1, skip in self.blocks:
      h = h + c1(F.relu(bn1(c0(F.relu(bn0(h))))))
      out = out + skip(h)
    return self.out(F.relu(self.bn_out(out)))


class Coupling(nn.Module):
  def __init__(self, mask, parity, c, dim, blocks, eps=1e-4, momentum=0.1):
    super().__init__()
    self.mask, self.parity, self.eps, self.momentum = mask, parity, eps, momentum
    if mask == "checkerboard":
      self.bn_in, self.net, out_c = BN(c), ResNet(2 * c + 1, dim, 2 * c, blocks), c
    else:
      self.bn_in, self.net, out_c = BN(c // 2), ResNet(c, dim, c, blocks), c // 2
    self.rescale = nn.Parameter(torch.zeros(()))
    self.register_buffer("mean", torch.zeros(out_c))
    self.register_buffer("var", torch.ones(out_c))

  def forward(self, x):
    n, c, h, w = x.shape
    if self.mask == "checkerboard":
      b = ((torch.arange(h).view(-1, 1) + torch.arange(w).view(1, -1) + self.parity) % 2).to(x.dtype)
      b = b.view(1, 1, h, w)
      cond = self.bn_in(x * b) * (2.0 * b)
      inp = torch.cat([F.relu(cond), F.relu(-cond), b.expand(n, 1, h, w)], 1)
      update, m, fixed = x, 1.0 - b, None
    else:
      first, second = x[:, : c // 2], x[:, c // 2:]
      fixed, update = (first, second) if self.parity == 0 else (second, first)
      cond = self.bn_in(fixed)
      inp = F.relu(torch.cat([cond, -cond], 1))
      m = torch.ones(1, 1, 1, 1, dtype=x.dtype)
    st = self.net(inp)
    k = st.shape[1] // 2
    s = self.rescale * torch.tanh(st[:, k:]) * m
    t = st[:, :k] * m
    y = update * torch.exp(s) + t
    logdet = s.sum(dim=(1, 2, 3))
    count = (m.expand(1, *y.shape[1:])).sum(dim=(0, 2, 3)) * n
    mean = (m * y).sum(dim=(0, 2, 3)) / count
    var = (m * (y - mean.view(1, -1, 1, 1)) ** 2).sum(dim=(0, 2, 3)) / count
    with torch.no_grad():
      self.mean.mul_(1 - self.momentum).add_(self.momentum * mean)
      self.var.mul_(1 - self.momentum).add_(self.momentum * var)
    log_var = torch.log(var + self.eps).view(1, -1, 1, 1)
    y = m * ((y - mean.view(1, -1, 1, 1)) * torch.exp(-0.5 * log_var)) + (1 - m) * y
    logdet = logdet - 0.5 * (m.expand(1, *y.shape[1:]) * log_var).sum()
    if fixed is not None:
      y = torch.cat([fixed, y] if self.parity == 0 else [y, fixed], 1)
    return y, logdet


def squeeze(x):
  n, c, h, w = x.shape
  x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
  return x.reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x):
  n, c4, h, w = x.shape
  c = c4 // 4
  x = x.view(n, 2, 2, c, h, w).permute(0, 3, 4, 1, 5, 2)
  return x.reshape(n, c, 2 * h, 2 * w)


class RealNVP(nn.Module):
  def __init__(self, channels=3, num_scales=2, features=64, blocks=8, alpha=0.05):
    super().__init__()
    self.alpha, self.num_scales = alpha, num_scales
    self.checker, self.channel = nn.ModuleList(), nn.ModuleList()
    c = channels
    for i in range(num_scales):
      last, dim = i == num_scales - 1, features * 2 ** i
      self.checker.append(nn.ModuleList([Coupling("checkerboard", j % 2, c, dim, blocks)
                                         for j in range(4 if last else 3)]))
      self.channel.append(nn.ModuleList([] if last else [Coupling("channel", j % 2, 4 * c, 2 * dim, blocks)
                                                         for j in range(3)]))
      c = 2 * c

  def forward(self, x):
    a = self.alpha
    s = a + (1 - 2 * a) * x
    h = torch.log(s) - torch.log1p(-s)
    logdet = (math.log(1 - 2 * a) - torch.log(s) - torch.log1p(-s)).sum(dim=(1, 2, 3))
    factored = []
    for i in range(self.num_scales):
      for layer in self.checker[i]:
        h, ld = layer(h)
        logdet = logdet + ld
      if i < self.num_scales - 1:
        h = squeeze(h)
        for layer in self.channel[i]:
          h, ld = layer(h)
          logdet = logdet + ld
        k = h.shape[1] // 2
        factored.append(h[:, k:])
        h = h[:, :k]
    for part in reversed(factored):
      h = unsqueeze(torch.cat([h, part], 1))
    return h, logdet


def param_count(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


class Trainer:
  """The `realnvp` family's step: dequantize uint8 pixels, NLL in nats + l2 on the scales, Adam."""

  def __init__(self, flow: RealNVP, lr=1e-3, l2=5e-5):
    self.flow, self.l2 = flow, l2
    self.scales = [p for n, p in flow.named_parameters() if n.endswith(".g") or n.endswith("rescale")]
    self.opt = torch.optim.Adam(flow.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)

  def step(self, pixels: torch.Tensor) -> float:
    x = (pixels.float() + torch.rand(pixels.shape)) / 256.0
    z, logdet = self.flow(x)
    nll = 0.5 * (z * z + math.log(2 * math.pi)).sum(dim=(1, 2, 3)) - logdet
    loss = nll.mean() + self.l2 * sum((p * p).sum() for p in self.scales)
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    self.opt.step()
    return float(loss)


def build(tiny: bool = False) -> Trainer:
  flow = RealNVP(features=4, blocks=1) if tiny else RealNVP()
  if not tiny and param_count(flow) != EXPECTED_CIFAR10_PARAMS:
    raise AssertionError(f"torch Real NVP has {param_count(flow)} params, expected {EXPECTED_CIFAR10_PARAMS}")
  return Trainer(flow)


if __name__ == "__main__":
  trainer = build()
  print(f"Real NVP CIFAR-10 twin: {param_count(trainer.flow):,} params")
  print("loss", trainer.step(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)))
