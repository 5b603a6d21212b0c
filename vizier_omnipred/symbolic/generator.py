"""Random formulas with their data, as in Kamienny et al. (2022, section 3), sized for a CPU.

One sample, deterministic from its seed:
1. the input dimension D ~ U{1..max_dim}, b ~ U{D-1..D+extra_binary} binary operators;
2. a random binary tree with b internal nodes; its b+1 leaves are inputs, each of x0..x{D-1}
   at least once;
3. u ~ U{0..max_unary} unary operators wrapped around random nodes (never directly around
   another unary operator);
4. random affine maps a*t + b (or a*t) on leaves and unary outputs, constants log-uniform in
   [0.1, 10) with a random sign, rounded to the two digits the vocabulary writes;
5. N ~ U{min_points..max_points} inputs from a mixture of up to `max_clusters` Gaussians,
   whitened per dimension (the explainer whitens real data the same way);
6. rejection: non-finite y, |y| above `max_abs_y`, (near-)constant y, or a formula longer
   than `max_len` tokens; then a new draw from the same stream.
"""

from __future__ import annotations

import attrs
import numpy as np

from vizier_omnipred.symbolic.expressions import CONSTANT, UNARY_OPS, Formula
from vizier_omnipred.symbolic.vocabulary import Vocabulary

# Relative frequencies (the paper down-weights the operators that blow up).
_UNARY_WEIGHTS = {'inv': 3, 'abs': 1, 'sqr': 4, 'sqrt': 2, 'sin': 2, 'cos': 2, 'tan': 0.5,
                  'atan': 1, 'log': 1.5, 'exp': 1.5}
_BINARY_WEIGHTS = {'add': 3, 'sub': 1, 'mul': 3, 'div': 2}
EVAL_SEED_OFFSET = 1 << 40  # evaluation samples come from seeds the training stream never uses


@attrs.frozen
class GeneratorConfig:
  """Sizes of the generated formulas and point sets."""

  max_dim: int = attrs.field(default=3, kw_only=True)
  extra_binary: int = attrs.field(default=3, kw_only=True)
  max_unary: int = attrs.field(default=2, kw_only=True)
  affine_probability: float = attrs.field(default=0.5, kw_only=True)
  min_points: int = attrs.field(default=20, kw_only=True)
  max_points: int = attrs.field(default=100, kw_only=True)
  max_clusters: int = attrs.field(default=5, kw_only=True)
  max_len: int = attrs.field(default=48, kw_only=True)
  max_abs_y: float = attrs.field(default=1e6, kw_only=True)

  def __attrs_post_init__(self):
    if self.max_dim < 1:
      raise ValueError(f'GeneratorConfig: max_dim must be >= 1, got {self.max_dim}.')
    if not 1 <= self.min_points <= self.max_points:
      raise ValueError(f'GeneratorConfig: need 1 <= min_points <= max_points, got'
                       f' {self.min_points}, {self.max_points}.')

  @property
  def vocabulary(self) -> Vocabulary:
    return Vocabulary(max_dim=self.max_dim)


@attrs.frozen
class Sample:
  formula: Formula
  x: np.ndarray  # [N, D], whitened
  y: np.ndarray  # [N]


def _constant(rng: np.random.Generator) -> float:
  value = 10.0 ** rng.uniform(-1, 1) * rng.choice([-1.0, 1.0])
  return float(f'{value:.1e}')


def _pick(rng: np.random.Generator, weights: dict) -> str:
  names = list(weights)
  p = np.array([weights[n] for n in names], dtype=float)
  return names[rng.choice(len(names), p=p / p.sum())]


class _Node:
  __slots__ = ('token', 'children')

  def __init__(self, token, children=()):
    self.token = token
    self.children = list(children)

  def walk(self):
    yield self
    for c in self.children:
      yield from c.walk()

  def prefix(self, out: list, consts: list) -> None:
    if isinstance(self.token, float):
      out.append(CONSTANT)
      consts.append(self.token)
    else:
      out.append(self.token)
    for c in self.children:
      c.prefix(out, consts)


def _tree(n_binary: int, rng: np.random.Generator) -> _Node:
  if n_binary == 0:
    return _Node('leaf')
  k = int(rng.integers(0, n_binary))
  return _Node(_pick(rng, _BINARY_WEIGHTS), [_tree(k, rng), _tree(n_binary - 1 - k, rng)])


def _affine(node: _Node, rng: np.random.Generator, probability: float) -> _Node:
  if rng.random() >= probability:
    return node
  scaled = _Node('mul', [_Node(_constant(rng)), node])
  return _Node('add', [scaled, _Node(_constant(rng))]) if rng.random() < 0.5 else scaled


def random_formula(dim: int, cfg: GeneratorConfig, rng: np.random.Generator) -> Formula:
  """One random formula over x0..x{dim-1} (steps 2-4 above; no data, no rejection)."""
  root = _tree(int(rng.integers(dim - 1, dim + cfg.extra_binary + 1)), rng)
  leaves = [n for n in root.walk() if n.token == 'leaf']
  variables = list(range(dim)) + list(rng.integers(0, dim, len(leaves) - dim))
  rng.shuffle(variables)
  for leaf, v in zip(leaves, variables):
    leaf.token = f'x{v}'
  # Unary operators around random nodes, then affine maps; both rebuild parents' child lists.
  for _ in range(int(rng.integers(0, cfg.max_unary + 1))):
    parents = {id(c): (p, i) for p in root.walk() for i, c in enumerate(p.children)}
    nodes = [n for n in root.walk() if n.token not in UNARY_OPS]
    target = nodes[int(rng.integers(len(nodes)))]
    if id(target) in parents and parents[id(target)][0].token in UNARY_OPS:
      continue
    wrapped = _Node(_pick(rng, _UNARY_WEIGHTS), [target])
    if id(target) in parents:
      p, i = parents[id(target)]
      p.children[i] = wrapped
    else:
      root = wrapped

  def affine_all(node: _Node) -> _Node:
    node.children = [affine_all(c) for c in node.children]
    if node.token in UNARY_OPS or (isinstance(node.token, str) and node.token.startswith('x')):
      return _affine(node, rng, cfg.affine_probability)
    return node

  root = affine_all(root)
  tokens, consts = [], []
  root.prefix(tokens, consts)
  return Formula(tokens, consts)


def sample_inputs(n: int, dim: int, max_clusters: int, rng: np.random.Generator) -> np.ndarray:
  """[n, dim] points from a random Gaussian mixture, whitened per dimension."""
  k = int(rng.integers(1, max_clusters + 1))
  centres = rng.normal(size=(k, dim))
  scales = rng.uniform(0.05, 1.0, size=(k, dim))
  which = rng.choice(k, size=n, p=rng.dirichlet(np.ones(k)))
  x = centres[which] + scales[which] * rng.normal(size=(n, dim))
  return (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)


def generate(seed: int | tuple, cfg: GeneratorConfig = GeneratorConfig(),
             max_tries: int = 1000) -> Sample:
  """One valid sample, a pure function of (seed, cfg)."""
  rng = np.random.default_rng(seed)
  vocab = cfg.vocabulary
  for _ in range(max_tries):
    dim = int(rng.integers(1, cfg.max_dim + 1))
    formula = random_formula(dim, cfg, rng)
    if len(vocab.encode(formula)) > cfg.max_len:
      continue
    x = sample_inputs(int(rng.integers(cfg.min_points, cfg.max_points + 1)), dim,
                      cfg.max_clusters, rng)
    y = formula.evaluate(x)
    if (not np.all(np.isfinite(y)) or np.max(np.abs(y)) > cfg.max_abs_y
        or np.std(y) <= 1e-6 * (1.0 + np.mean(np.abs(y)))):
      continue
    return Sample(formula, x, y)
  raise RuntimeError(f'No valid formula in {max_tries} draws for seed {seed!r}: the generator'
                     f' config {cfg} rejects (almost) everything.')
