"""Synthetic studies over conditional search spaces, for the in-context prior.

A root choice (a categorical such as `model` in {svm, random_forest, mlp}) selects a branch;
each branch has its own child parameters, and one branch may nest a second choice whose
values have their own children (two levels). Shared parameters sit beside the root choice.
A trial holds exactly the parameters its choices activate.

The objective on a leaf (one full path of choices) is a GP draw (`gp_prior`) over the shared
and the path's active parameters plus a per-leaf offset: leaves are independent functions,
their offsets spread from negligible to dominant, so which branch wins and how much its
children matter both vary from study to study. Trials favour some branches (Dirichlet
weights), as an optimiser's trials would.
"""

from __future__ import annotations

import attrs
import numpy as np
from vizier import pyvizier as vz

from vizier_omnipred.pretraining import corpus
from vizier_omnipred.pretraining.gp_prior import GPFunction
from vizier_omnipred.search_space import add_parameter

_ROOT_CHOICES = {
    'model': ('svm', 'random_forest', 'mlp', 'gbdt', 'knn', 'linear'),
    'optimizer': ('adam', 'sgd', 'rmsprop', 'lamb', 'adagrad'),
    'architecture': ('resnet', 'vit', 'cnn', 'transformer', 'mlp_mixer'),
    'algorithm': ('cma_es', 'bayes', 'random', 'evolution'),
    'booster': ('gbtree', 'dart', 'gblinear'),
    'solver': ('lbfgs', 'adam', 'sgd', 'newton_cg'),
}
_NESTED_CHOICES = {
    'kernel': ('rbf', 'linear', 'poly'),
    'scheduler': ('cosine', 'step', 'constant'),
    'normalization': ('batch', 'layer', 'none'),
    'penalty': ('l1', 'l2', 'elasticnet'),
}
MAX_SHARED = 2  # parameters beside the root choice
MAX_CHILDREN = 3  # per branch
NESTED_PROBABILITY = 0.5  # a study has a second-level choice under one branch
MIN_LEAF_SPREAD, MAX_LEAF_SPREAD = 0.1, 2.0  # std of the leaf offsets, in GP output units


@attrs.frozen
class _Leaf:
  """One full path of choices: which values it takes and which coordinates it activates."""

  choices: dict
  coords: list
  gp: GPFunction | None
  offset: float


class ConditionalStudy:
  """One synthetic study over a conditional space: `problem` and `draw(n, rng)`, as
  `corpus.SyntheticStudy` offers them."""

  metric_inputs: tuple[str, ...] = ()

  def __init__(self, seed: int, config: corpus.CorpusConfig = corpus.CorpusConfig(), *,
               split: str = 'train'):
    if split not in ('train', 'eval'):
      raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
    self.seed = seed
    rng = np.random.default_rng([seed, 3 if split == 'train' else 4])
    taken: set[str] = set()

    def coordinates(k: int) -> list:
      out = []
      for _ in range(k):
        c = corpus.draw_coordinate(rng, len(taken), taken)
        taken.add(c.config.name)
        out.append(c)
      return out

    shared = coordinates(int(rng.integers(0, MAX_SHARED + 1)))
    self.root_name = str(rng.choice([n for n in _ROOT_CHOICES if n not in taken]))
    values = list(rng.permutation(_ROOT_CHOICES[self.root_name]))
    values = [str(v) for v in values[: int(rng.integers(2, min(4, len(values)) + 1))]]
    taken.add(self.root_name)
    children = {v: coordinates(int(rng.integers(0, MAX_CHILDREN + 1))) for v in values}
    if not any(children.values()):  # at least one branch has parameters of its own
      children[values[0]] = coordinates(1)
    nested = None
    if rng.random() < NESTED_PROBABILITY:
      name = str(rng.choice([n for n in _NESTED_CHOICES if n not in taken]))
      taken.add(name)
      nvalues = [str(v) for v in _NESTED_CHOICES[name][: int(rng.integers(2, 4))]]
      nested = (str(rng.choice(values)), name,
                {v: coordinates(int(rng.integers(0, 3))) for v in nvalues})
    spread = float(np.exp(rng.uniform(np.log(MIN_LEAF_SPREAD), np.log(MAX_LEAF_SPREAD))))
    self.leaves: list[_Leaf] = []
    for v in values:
      paths = [({self.root_name: v}, shared + children[v])]
      if nested is not None and nested[0] == v:
        paths = [({self.root_name: v, nested[1]: nv}, shared + children[v] + grand)
                 for nv, grand in nested[2].items()]
      for choices, coords in paths:
        gp = GPFunction.draw(len(coords), rng, config.gp) if coords else None
        self.leaves.append(_Leaf(choices, coords, gp, float(rng.normal(0.0, spread))))
    self._leaf_weights = rng.dirichlet(np.ones(len(self.leaves)))
    scale = 10.0 ** rng.uniform(-3, 3)
    maximize = rng.random() < 0.4
    self._scale = -scale if maximize else scale
    self._offset = float(rng.uniform(-1, 1) * 10.0 ** rng.uniform(-3, 3))
    self.problem = self._problem(shared, values, children, nested, maximize, rng)

  def _problem(self, shared, values, children, nested, maximize, rng) -> vz.ProblemStatement:
    problem = vz.ProblemStatement()
    root = problem.search_space.root
    for c in shared:
      add_parameter(root, c.config)
    parent = root.add_categorical_param(self.root_name, values)
    for v in values:
      branch = parent.select_values([v])
      for c in children[v]:
        add_parameter(branch, c.config)
      if nested is not None and nested[0] == v:
        inner = branch.add_categorical_param(nested[1], list(nested[2]))
        for nv, grand in nested[2].items():
          for c in grand:
            add_parameter(inner.select_values([nv]), c.config)
    goal = 'MAXIMIZE' if maximize else 'MINIMIZE'
    problem.metric_information.append(vz.MetricInformation(
        name=str(rng.choice(corpus.METRICS[goal])), goal=vz.ObjectiveMetricGoal[goal]))
    problem.metadata['title'] = f'{self.root_name} selection on {rng.choice(corpus.DATASETS)}'
    problem.metadata['description'] = f'synthetic conditional study {self.seed}'
    return problem

  def draw(self, n: int, rng: np.random.Generator) -> tuple[list[dict], np.ndarray]:
    """n trials (each holding only its active parameters) and their objective values; every
    call is a new draw of each leaf's GP, as `SyntheticStudy.draw`."""
    which = rng.choice(len(self.leaves), size=n, p=self._leaf_weights)
    rows: list[dict] = [{} for _ in range(n)]
    raw = np.zeros(n)
    for k, leaf in enumerate(self.leaves):
      idx = np.flatnonzero(which == k)
      if not len(idx):
        continue
      for i in idx:
        rows[i] = dict(leaf.choices, **{c.config.name: c.sample(rng) for c in leaf.coords})
      raw[idx] = leaf.offset
      if leaf.gp is not None:
        z = np.asarray([[c.to_z(rows[i][c.config.name]) for c in leaf.coords] for i in idx])
        raw[idx] += leaf.gp.sample((z + 5.0) / 10.0, rng)
    return rows, self._scale * raw + self._offset
