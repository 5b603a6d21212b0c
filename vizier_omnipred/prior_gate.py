"""How much the model listens to each prior study: a learned gate on what its trials say.

Measured (benchmarks/results/prior_names.md): a hundred trials of an unrelated prior study in
the context raise the held-out loss whatever they hold, and more unrelated studies in
pretraining only taught the network to lean less on every prior study, related ones too
(docs/design.md). Attention cannot weigh a prior study as a whole: each of its trials is one
more key. The gate gives each prior study one number, added to every attention score on its
trials (a log-weight, the same in every layer and head) by every token of another study.

What the gate reads is how well the prior study predicts the current study's own trials: a
kernel regression of the prior study's y (each study's y scaled by its own range) at the current
context's points, over the parameters both share (z-scores, matched by name; a categorical value
counts as different or same), and the correlation of those predictions with the current y, at
two bandwidths. Plus: whether there are enough current trials to tell (`MIN_CURRENT`), the
share of the current study's parameters the prior study has, and both studies' sizes. A set
function of each study's trials, so no order of studies or trials matters.

The gate's last layer starts at zero: switched on in a trained model (`growth`) it changes
nothing until training moves it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Squared-distance bandwidths of the kernel regression, in z-score units averaged over the shared
# parameters: near neighbours only, and a smooth trend (z-scores of random points differ by
# about 2 per parameter).
BANDWIDTHS_SQ = (0.1, 1.0)
# Fewer current context trials than this: no correlation can be told from noise (0, flagged).
MIN_CURRENT = 3
# Sizes reach the gate as log1p(n) / log1p(this): about 1 for a 100-trial study.
SIZE_SCALE = 100
NUM_FEATURES = len(BANDWIDTHS_SQ) + 4
HIDDEN = 32
# A text value's characters mixed into one number to compare (positions weighted apart).
_TEXT_MIX = 1.6180339887


def agreement_features(inputs: dict[str, torch.Tensor], num_studies: int) -> torch.Tensor:
  """[B, K, NUM_FEATURES] for prior studies 1..K (`inputs` as `OmniPredModel.to_tensors` makes
  them, with 'study'); zeros where a prior study is absent."""
  with torch.no_grad():
    study = inputs['study'].long()
    present = inputs['present']
    mask, numeric = inputs['mask'], inputs['kinds'] == 0  # [B, N, P]
    z = inputs['features'].float()  # [B, N, P, 2]
    pos = torch.arange(inputs['texts'].shape[-1], device=z.device, dtype=torch.float32)
    text = (inputs['texts'].float() * torch.pow(_TEXT_MIX, pos)).sum(-1)  # [B, N, P]
    y = inputs['y_scalar'][..., 0].float()  # [B, N], each study scaled by its own range
    current = (study == 0) & inputs['is_context'] & present
    # Rows i: the current context; columns j: every prior trial.
    ci, c_ok = selected_positions(current)
    pj, p_ok = selected_positions((study > 0) & present)
    take = lambda t, idx: t.gather(1, idx.view(idx.shape + (1,) * (t.dim() - 2)).expand(
        idx.shape + t.shape[2:]))
    m_i, m_j = take(mask, ci) & c_ok[..., None], take(mask, pj) & p_ok[..., None]
    shared = m_i[:, :, None] & m_j[:, None]  # [B, I, J, P]
    num_i, num_j = take(numeric, ci), take(numeric, pj)
    gap = ((take(z, ci)[:, :, None] - take(z, pj)[:, None]) ** 2).sum(-1)
    mismatch = (take(text, ci)[:, :, None] != take(text, pj)[:, None]).float()
    gap = torch.where(num_i[:, :, None] & num_j[:, None], gap, 4.0 * mismatch)
    count = shared.sum(-1)  # [B, I, J]
    d2 = (gap * shared).sum(-1) / count.clamp_min(1)
    kernels = [torch.exp(-d2 / (2.0 * h2)) for h2 in BANDWIDTHS_SQ]  # the same for every study
    y_i, y_j, s_j = take(y, ci), take(y, pj), take(study, pj)
    n_cur = current.sum(1).float()  # [B]
    in_current = (mask & current[..., None]).any(1)  # [B, P]
    out = []
    for k in range(1, num_studies + 1):
      member = (study == k) & present  # [B, N]
      n_k = member.sum(1).float()
      in_k = (mask & member[..., None]).any(1)
      overlap = (in_current & in_k).sum(1).float() / in_current.sum(1).clamp_min(1).float()
      pair = c_ok[:, :, None] & ((s_j == k) & p_ok)[:, None] & (count > 0)
      rs = []
      for kernel in kernels:
        w = kernel * pair
        total = w.sum(-1)  # [B, I]
        guess = (w * y_j[:, None]).sum(-1) / total.clamp_min(1e-12)
        rs.append(_correlation(guess, y_i, c_ok & (total > 1e-12)))
      enough = (n_cur >= MIN_CURRENT) & (n_k > 0)
      r = torch.stack(rs, -1) * enough[:, None]
      sizes = torch.stack([torch.log1p(n_cur), torch.log1p(n_k)], -1) / math.log1p(SIZE_SCALE)
      out.append(torch.cat([r, enough[:, None].float(), overlap[:, None], sizes], -1)
                 * (n_k > 0)[:, None])
    return torch.stack(out, 1)


def selected_positions(selected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
  """[B, N] bool -> the selected positions [B, S] (S = the most in one row; a host read) and
  which of them are real, in their order along N."""
  counts = selected.sum(1)
  most = int(counts.max()) if selected.numel() else 0
  index = torch.argsort((~selected).to(torch.int8), dim=1, stable=True)[:, :most]
  valid = torch.arange(most, device=selected.device)[None, :] < counts[:, None]
  return index, valid


def _correlation(a: torch.Tensor, b: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
  """Pearson correlation over the entries `ok` of each row; 0 where fewer than 2 or constant."""
  w = ok.float()
  n = w.sum(-1).clamp_min(1)
  da = (a - (a * w).sum(-1, keepdim=True) / n[:, None]) * w
  db = (b - (b * w).sum(-1, keepdim=True) / n[:, None]) * w
  den = torch.sqrt((da * da).sum(-1) * (db * db).sum(-1))
  return torch.where(den > 1e-12, (da * db).sum(-1) / den.clamp_min(1e-12), torch.zeros_like(den))


class PriorGate(nn.Module):
  """Agreement features of each prior study -> its log-weight in attention [B, K]."""

  def __init__(self):
    super().__init__()
    self.net = nn.Sequential(nn.Linear(NUM_FEATURES, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, 1))
    nn.init.zeros_(self.net[2].weight)
    nn.init.zeros_(self.net[2].bias)

  def forward(self, features: torch.Tensor) -> torch.Tensor:
    return self.net(features)[..., 0]

  @staticmethod
  def key_bias(log_weight: torch.Tensor, token_study: torch.Tensor) -> torch.Tensor:
    """[B, K] log-weights, [B, L] each token's study (0: the current study and metadata) ->
    [B, L, L] added to the score of query l on key j: key j's study's log-weight when j is a
    prior study's and l is not of that study, else 0."""
    k = log_weight.shape[1]
    padded = torch.cat([log_weight.new_zeros(log_weight.shape[0], 1), log_weight], 1)
    per_key = padded.gather(1, token_study.clamp(0, k))  # [B, L]
    other = token_study[:, :, None] != token_study[:, None, :]
    return per_key[:, None, :] * other.to(per_key.dtype)
