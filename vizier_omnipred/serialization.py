"""Vizier problems and trial parameters -> model inputs.

OmniPred reads a trial as text: parameter names with their values, plus study metadata.
Here each parameter becomes ONE item (as the end-to-end symbolic-regression paper embeds a
whole point as one vector): its name as characters, its value as number tokens (sign,
exponent, mantissa digits) or, for categories, as characters. Study metadata (title, metric
name, goal, description) are items of the study, not of a trial.

The in-context model reads a whole study at once (`StudyInputs`): the metadata items, every
completed trial with its y (the context), and the trials to predict (the queries). Numbers
are also given standardised by the context's own statistics (mean and spread of each
parameter over the context trials, linear and log), as the symbolic-regression model whitens
its points: the model can then compare values across a study without knowing its bounds.

Search-space bounds are never part of the input: the features of ``x=2`` are the same whether
the range is [1, 5] or [0, 100].
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence, Union

import attrs
import numpy as np
from vizier import pyvizier as vz

from vizier_omnipred import search_space
from vizier_omnipred.numbers import NumberCodec

ParameterValue = Union[float, int, str, bool]
Parameters = Mapping[str, ParameterValue]

# Item kinds. A NUMBER carries number tokens; TEXT carries characters (a category or a
# metadata string).
NUMBER = 0
TEXT = 1
NUM_KINDS = 2

_CHAR_VOCAB = 128  # ASCII; anything else maps to '?'. 0 is padding.


@attrs.frozen
class FeaturizerConfig:
  """Sizes of the item features. Part of a checkpoint: change it and retrain."""

  max_name_chars: int = attrs.field(default=24, kw_only=True)
  max_text_chars: int = attrs.field(default=24, kw_only=True)
  value_digits: int = attrs.field(default=4, kw_only=True)
  value_min_exponent: int = attrs.field(default=-30, kw_only=True)
  value_max_exponent: int = attrs.field(default=30, kw_only=True)

  @property
  def value_codec(self) -> NumberCodec:
    return NumberCodec(
        digits=self.value_digits,
        min_exponent=self.value_min_exponent,
        max_exponent=self.value_max_exponent,
    )

  @property
  def char_vocab(self) -> int:
    return _CHAR_VOCAB


@attrs.frozen
class StudyInfo:
  """What a study says about itself, in words. Goes into every input."""

  title: str = attrs.field(default='', kw_only=True)
  metric_name: str = attrs.field(default='objective', kw_only=True)
  goal: str = attrs.field(default='MAXIMIZE', kw_only=True)
  description: str = attrs.field(default='', kw_only=True)

  @classmethod
  def from_problem(cls, problem: vz.ProblemStatement, metric_name: str | None = None) -> 'StudyInfo':
    metrics = problem.metric_information
    if metric_name is None:
      objectives = list(metrics.of_type(vz.MetricType.OBJECTIVE)) if len(metrics) else []
      metric = objectives[0] if objectives else None
    else:
      matches = [m for m in metrics if m.name == metric_name]
      if not matches:
        raise ValueError(
            f'Metric {metric_name!r} is not in the problem; it has'
            f' {[m.name for m in metrics]}.'
        )
      metric = matches[0]
    return cls(
        title=str(problem.metadata.get('title', '') or ''),
        description=str(problem.metadata.get('description', '') or ''),
        metric_name=metric.name if metric else 'objective',
        goal=metric.goal.name if metric else 'MAXIMIZE',
    )

  def items(self) -> list[tuple[str, str]]:
    pairs = [('metric', self.metric_name), ('goal', self.goal)]
    if self.title:
      pairs.append(('title', self.title))
    if self.description:
      pairs.append(('description', self.description))
    return pairs


@attrs.frozen
class ModelInputs:
  """A batch of featurised inputs: n rows of P items (padded). numpy, ready for torch.

  names:   [n, P, max_name_chars] int64 character ids (0 = pad)
  kinds:   [n, P] int64, NUMBER or TEXT
  numbers: [n, P, codec.length] int64 slot ids (zeros for TEXT items)
  scalars: [n, P] float32, sign(v) * log1p(|v|) for NUMBER items, 0 otherwise
  texts:   [n, P, max_text_chars] int64 character ids (zeros for NUMBER items)
  mask:    [n, P] bool, True where an item is present
  values:  [n, P] float64, the raw number of a NUMBER item, 0 otherwise
  """

  names: np.ndarray
  kinds: np.ndarray
  numbers: np.ndarray
  scalars: np.ndarray
  texts: np.ndarray
  mask: np.ndarray
  values: np.ndarray

  def __len__(self) -> int:
    return self.names.shape[0]

  def select(self, index: np.ndarray | slice) -> 'ModelInputs':
    return ModelInputs(**{k: v[index] for k, v in attrs.asdict(self, recurse=False).items()})

  def columns(self, keep: Sequence[int]) -> 'ModelInputs':
    """Only the items `keep` of every row: [n, P] -> [n, len(keep)]."""
    return self.select((slice(None), np.asarray(keep, dtype=np.int64)))

  @classmethod
  def concatenate(cls, parts: Sequence['ModelInputs'], *, pad_axes: tuple[int, ...] = (1,)
                  ) -> 'ModelInputs':
    """Stacks along axis 0, zero-padding each of `pad_axes` (default: the item axis) to the
    longest part."""
    return cls(**{f.name: concatenate_padded([getattr(p, f.name) for p in parts], pad_axes)
                  for f in attrs.fields(cls)})


def union_featurizer(featurizer: Featurizer, problem: vz.ProblemStatement | None,
                     rows: Sequence[Parameters]) -> Featurizer:
  """A featurizer like `featurizer` (its study, metric inputs and config) that reads rows
  holding any subset of `problem`'s parameters and of the others `rows` hold: how prior
  studies' trials are read beside a study's own, parameters matched by name. A parameter the
  problem lacks is typed from its values (text: CATEGORICAL of the values seen; numbers:
  DOUBLE over their range); a category or discrete value the problem does not list is added
  (a DISCRETE parameter becomes a DOUBLE over its values: the model reads both as numbers)."""
  if problem is None:  # no space to check rows against: names and types from the rows
    out = Featurizer(None, study=featurizer.study, config=featurizer.config,
                     metric_inputs=featurizer.metric_inputs, partial_rows=True)
    out.infer(rows)
    return out
  inputs = set(featurizer.metric_inputs)
  known = search_space.all_parameters(problem.search_space)
  seen: dict[str, list] = {}
  for row in rows:
    for name, value in _plain(row).items():
      if name not in inputs:
        seen.setdefault(name, []).append(value)
  union = vz.ProblemStatement()
  root = union.search_space.root
  for name in sorted(set(known) | set(seen)):
    pc, values = known.get(name), seen.get(name, [])
    texts = pc.type == vz.ParameterType.CATEGORICAL if pc is not None else any(
        isinstance(v, (str, bool, np.bool_)) for v in values)
    if texts:
      listed = list(pc.feasible_values) if pc is not None else []
      root.add_categorical_param(name, listed + sorted({str(v) for v in values} - set(listed)))
    elif pc is not None and pc.type == vz.ParameterType.DISCRETE and all(
        any(math.isclose(float(v), f) for f in pc.feasible_values) for v in values):
      root.add_discrete_param(name, list(pc.feasible_values))
    elif pc is not None and pc.type in (vz.ParameterType.DOUBLE, vz.ParameterType.INTEGER):
      search_space.add_parameter(root, pc)
    else:
      numbers = [float(v) for v in values] + (list(map(float, pc.feasible_values))
                                               if pc is not None else [])
      lo, hi = min(numbers), max(numbers)
      root.add_float_param(name, lo, hi if hi > lo else lo + 1.0)
  union.metric_information = problem.metric_information
  return Featurizer(union, study=featurizer.study, config=featurizer.config,
                    metric_inputs=featurizer.metric_inputs, partial_rows=True)


def concatenate_padded(arrays: Sequence[np.ndarray], pad_axes: tuple[int, ...]) -> np.ndarray:
  """Concatenates along axis 0 after zero-padding `pad_axes` to their largest size."""
  sizes = {axis: max(a.shape[axis] for a in arrays) for axis in pad_axes}
  padded = []
  for a in arrays:
    width = [(0, 0)] * a.ndim
    for axis, size in sizes.items():
      width[axis] = (0, size - a.shape[axis])
    padded.append(np.pad(a, width))
  return np.concatenate(padded, axis=0)


def encode_chars(text: str, length: int) -> np.ndarray:
  """A string -> [length] ASCII ids, truncated; non-ASCII becomes '?'; 0 pads."""
  ids = [ord(c) if 0 < ord(c) < _CHAR_VOCAB else ord('?') for c in text[:length]]
  return np.pad(np.asarray(ids, dtype=np.int64), (0, length - len(ids)))


def _symlog(v: np.ndarray) -> np.ndarray:
  return (np.sign(v) * np.log1p(np.abs(v))).astype(np.float32)


class Featurizer:
  """Turns parameter dicts into `ModelInputs` for one study.

  With a `problem`, every row is checked against its search space
  (`search_space.check_parameters`, bounds aside: a regressor may extrapolate): each active
  parameter present, nothing else, categories and discrete values feasible, numbers finite.
  In a conditional space a row holds only its active parameters; the others are absent items
  (`mask` False). Without a problem, the parameter types are inferred from the first row
  (str/bool -> TEXT, int/float -> NUMBER) and later rows must have the same names.

  `metric_inputs` names other metrics of the study that a row may carry as NUMBER items beside
  its parameters (several objectives, sampled jointly by the chain rule: objective k reads the
  values of the objectives before it). A missing or non-finite metric value is an absent
  item. They come after the parameters, in the order given (`with_metric_values` fills them).

  `partial_rows`: a row may hold any subset of the problem's parameters (a define-by-run space,
  where only the trial says which parameters it has); the absent ones are absent items, as in
  a conditional space.
  """

  def __init__(
      self,
      problem: vz.ProblemStatement | None = None,
      *,
      study: StudyInfo | None = None,
      config: FeaturizerConfig = FeaturizerConfig(),
      metric_inputs: Sequence[str] = (),
      partial_rows: bool = False,
  ):
    self.config = config
    self.partial_rows = partial_rows
    self.metric_inputs = tuple(metric_inputs)
    if len(set(self.metric_inputs)) != len(self.metric_inputs):
      raise ValueError(f'metric_inputs {self.metric_inputs} names a metric twice.')
    self._codec = config.value_codec
    self._configs: dict[str, vz.ParameterConfig] | None = None
    self._space = problem.search_space if problem is not None else None
    if problem is not None:
      self._configs = search_space.all_parameters(problem.search_space)
      study = study or StudyInfo.from_problem(problem)
    self.study = study or StudyInfo()
    self._text_params: set[str] = set()
    self._names: list[str] | None = None
    if self._configs is not None:
      clash = sorted(set(self._configs) & set(self.metric_inputs))
      if clash:
        raise ValueError(f'Metric {clash[0]!r} is also a parameter name; a metric read as an'
                         ' input needs a name of its own.')
      self._names = sorted(self._configs) + list(self.metric_inputs)
      self._text_params = {
          n for n, pc in self._configs.items() if pc.type == vz.ParameterType.CATEGORICAL
      }
    self._name_ids: dict[str, np.ndarray] = {}
    meta = self.study.items()
    self._meta_names = np.stack([self._name_chars(n) for n, _ in meta]) if meta else None
    self._meta_texts = (
        np.stack([encode_chars(t, config.max_text_chars) for _, t in meta]) if meta else None
    )

  @property
  def parameter_names(self) -> list[str] | None:
    if self._names is None:
      return None
    return self._names[: len(self._names) - len(self.metric_inputs)]

  def _name_chars(self, name: str) -> np.ndarray:
    if name not in self._name_ids:
      self._name_ids[name] = encode_chars(name, self.config.max_name_chars)
    return self._name_ids[name]

  def infer(self, rows: Sequence[Parameters]) -> None:
    """Without a problem: the parameters and their types from the first row, or with
    `partial_rows` from every row (the union of their names; text where any value is)."""
    rows = [_plain(r) for r in (rows if self.partial_rows else rows[:1])]
    params = sorted({n for r in rows for n in r} - set(self.metric_inputs))
    if not params:
      raise ValueError('A trial has no parameters; OmniPred needs at least one.')
    self._names = params + list(self.metric_inputs)
    self._text_params = {n for r in rows for n, v in r.items()
                         if n in params and isinstance(v, (str, bool, np.bool_))}

  def _check(self, i: int, row: Parameters) -> None:
    for name in self.metric_inputs:
      value = row.get(name)
      if value is not None and isinstance(value, (str, bool, np.bool_)):
        raise ValueError(f'Row {i}: metric {name!r} is read as a number but got {value!r}.')
    row = {k: v for k, v in row.items() if k not in self.metric_inputs}
    if self._space is not None:
      try:
        search_space.check_parameters(self._space, row, check_bounds=False,
                                      partial=self.partial_rows)
      except ValueError as e:
        raise ValueError(f'Row {i}: {e}') from None
      return
    names, expected = set(row), set(self.parameter_names)
    missing = sorted(expected - names)
    if missing and not self.partial_rows:
      raise ValueError(f'Row {i}: parameter {missing[0]!r} is missing (expected {sorted(expected)}).')
    extra = sorted(names - expected)
    if extra:
      raise ValueError(
          f'Row {i}: parameter {extra[0]!r} is not in the first row ({sorted(expected)}).')
    for name in self.parameter_names:
      if name not in row:
        continue
      value = row[name]
      if name in self._text_params:
        continue
      if isinstance(value, (str, bool, np.bool_)):
        raise ValueError(f'Row {i}: parameter {name!r} is numeric but got {value!r}.')
      if not math.isfinite(float(value)):
        raise ValueError(f'Row {i}: parameter {name!r} is {value!r}; numbers must be finite.')

  def featurize(self, rows: Sequence[Parameters]) -> ModelInputs:
    """[n] parameter dicts -> ModelInputs with P = num parameters + num metadata items."""
    rows = [_plain(r) for r in rows]
    if self._names is None:
      if not rows:
        raise ValueError('Cannot infer parameter types from zero rows; pass a problem.')
      self.infer(rows)
    for i, row in enumerate(rows):
      self._check(i, row)
    n, p = len(rows), len(self._names)
    cfg = self.config
    num_ids = np.zeros((n, p, self._codec.length), dtype=np.int64)
    scalars = np.zeros((n, p), dtype=np.float32)
    texts = np.zeros((n, p, cfg.max_text_chars), dtype=np.int64)
    kinds = np.zeros((n, p), dtype=np.int64)
    values = np.zeros((n, p), dtype=np.float64)
    # A parameter that is not active in a row (conditional spaces) is an absent item; so is
    # a metric input without a finite value.
    mask = np.asarray([[name in row for name in self._names] for row in rows],
                      dtype=bool).reshape(n, p)
    for j in range(p - len(self.metric_inputs), p):
      name = self._names[j]
      mask[:, j] &= [name not in row or _is_finite(row[name]) for row in rows]
    for j, name in enumerate(self._names):
      rows_j = np.flatnonzero(mask[:, j])
      if name in self._text_params:
        kinds[:, j] = TEXT
        cache: dict[str, np.ndarray] = {}
        for i in rows_j:
          key = str(rows[i][name])
          if key not in cache:
            cache[key] = encode_chars(key, cfg.max_text_chars)
          texts[i, j] = cache[key]
      else:
        values[rows_j, j] = [float(rows[i][name]) for i in rows_j]
        # Tokens saturate beyond the codec's range (1e31 and up); the scalars keep the size.
        num_ids[rows_j, j] = self._codec.encode_many(self._codec.saturate(values[rows_j, j]))
        scalars[rows_j, j] = _symlog(values[rows_j, j])
    names = np.broadcast_to(
        np.stack([self._name_chars(nm) for nm in self._names]), (n, p, cfg.max_name_chars)
    )
    return ModelInputs(
        names=np.ascontiguousarray(names), kinds=kinds, numbers=num_ids, scalars=scalars,
        texts=texts, mask=mask, values=values,
    )

  def with_metric_values(self, inputs: ModelInputs, values: np.ndarray) -> ModelInputs:
    """`inputs` (from `featurize`) with its metric-input items set to `values` [n, k] (k =
    len(metric_inputs); NaN: absent), without featurising the rows again: how the chain rule
    asks for one objective at every sample of the ones before it."""
    k = len(self.metric_inputs)
    values = np.asarray(values, dtype=np.float64).reshape(len(inputs), k)
    if k == 0:
      return inputs
    # Only the fields written here are copied; names and texts are shared with `inputs`.
    out = attrs.asdict(inputs, recurse=False)
    out.update({f: out[f].copy() for f in ('mask', 'kinds', 'values', 'scalars', 'numbers')})
    cols = slice(inputs.names.shape[1] - k, None)
    finite = np.isfinite(values)
    clean = np.where(finite, values, 0.0)
    out['mask'][:, cols] = finite
    out['kinds'][:, cols] = NUMBER
    out['values'][:, cols] = clean
    out['scalars'][:, cols] = np.where(finite, _symlog(clean), 0.0)
    out['numbers'][:, cols] = np.where(finite[..., None],
                                       self._codec.encode_many(self._codec.saturate(clean)), 0)
    return ModelInputs(**out)

  def metadata(self) -> ModelInputs:
    """The study's metadata items as one row [1, M] of TEXT items."""
    m = len(self.study.items())
    return ModelInputs(
        names=self._meta_names[None], kinds=np.full((1, m), TEXT, dtype=np.int64),
        numbers=np.zeros((1, m, self._codec.length), dtype=np.int64),
        scalars=np.zeros((1, m), dtype=np.float32), texts=self._meta_texts[None],
        mask=np.ones((1, m), dtype=bool), values=np.zeros((1, m)),
    )


STANDARD_CLIP = 10.0  # z-scores beyond this carry no more information for the model


def standardized_values(values: np.ndarray, is_number: np.ndarray, is_context: np.ndarray,
                        present: np.ndarray | None = None) -> np.ndarray:
  """Each numeric parameter standardised by its context trials' mean and spread.

  values, is_number, present: [N, P] (one study; `present` False where a conditional
  parameter is not active, None: all present); is_context: [N] bool. -> [N, P, 2] float32:
  the linear z-score and, where every context value is positive, the z-score of log(value)
  (else the linear one again). Clipped to +-STANDARD_CLIP. A parameter with fewer than two
  context values, or no spread, gets 0: nothing in the context tells its scale; so does an
  absent item. Uses only context rows, so a query's features never depend on the other
  queries.
  """
  out = np.zeros(values.shape + (2,), dtype=np.float32)
  if present is None:
    present = np.ones(values.shape, dtype=bool)
  for j in range(values.shape[1]):
    rows = is_context & present[:, j]
    if rows.sum() < 2 or not is_number[rows, j].all():
      continue
    col, c = values[:, j], values[rows, j]
    lin = _zscore(col, c)
    out[:, j, 0] = lin
    if np.all(c > 0):
      with np.errstate(divide='ignore', invalid='ignore'):
        out[:, j, 1] = _zscore(np.log(np.where(col > 0, col, np.min(c) / 10)), np.log(c))
    else:
      out[:, j, 1] = lin
  out[~present] = 0.0
  return out


# Beyond this magnitude a column is divided by its largest value before its spread is taken
# (the squares of 1e155 and up overflow float64).
_HUGE = 1e150


def _zscore(col: np.ndarray, ctx: np.ndarray) -> np.ndarray:
  largest = float(np.max(np.abs(ctx))) if len(ctx) else 0.0
  if largest > _HUGE:
    return _zscore(col / largest, ctx / largest)
  # Halved before subtracting so that values near +-1e308 do not overflow.
  mean = np.mean(ctx / 2) * 2
  spread = np.std(ctx / 2) * 2
  if not spread > 0 or not np.isfinite(spread):
    return np.zeros_like(col)
  return np.clip((col / 2 - mean / 2) / (spread / 2), -STANDARD_CLIP, STANDARD_CLIP)


@attrs.frozen
class StudyInputs:
  """B studies for the in-context model, padded to N trials of P items and M metadata items.

  items:      ModelInputs whose arrays have shape [B, N, P, ...]
  features:   [B, N, P, 2] float32 context-standardised values (`standardized_values`)
  meta:       ModelInputs whose arrays have shape [B, M, ...]
  is_context: [B, N] bool, the trial's y is given (context) rather than asked (query)
  present:    [B, N] bool, False on padding
  y:          [B, N] float64 y of context trials (already normalised per study), 0 elsewhere
  study:      [B, N] int8 or None: which study a trial is from, 0 the current one (its queries
              and context), k > 0 the k-th prior study (context only, y normalised by that
              study's own values); None: every trial is the current study's
  """

  items: ModelInputs
  features: np.ndarray
  meta: ModelInputs
  is_context: np.ndarray
  present: np.ndarray
  y: np.ndarray
  study: np.ndarray | None = None

  @property
  def num_queries(self) -> int:
    return int((self.present & ~self.is_context).sum())

  @classmethod
  def build(cls, items: ModelInputs, meta: ModelInputs, context_y: np.ndarray,
            num_context: int, study: np.ndarray | None = None) -> 'StudyInputs':
    """One study: `items` [N, P] with the context trials first, their y [num_context];
    `study` [N]: which study each trial is from (see the class doc; prior trials are context).
    Parameters are standardised over every context trial, prior ones included: a value
    means the same in every study that has the parameter."""
    n = len(items)
    is_context = np.arange(n) < num_context
    y = np.zeros(n)
    y[:num_context] = context_y
    features = standardized_values(items.values, items.kinds == NUMBER, is_context, items.mask)
    return cls(items=ModelInputs(**{k: v[None] for k, v in attrs.asdict(items, recurse=False).items()}),
               features=features[None], meta=meta, is_context=is_context[None],
               present=np.ones((1, n), dtype=bool), y=y[None],
               study=None if study is None else np.asarray(study, dtype=np.int8)[None])

  def compact(self) -> 'StudyInputs':
    """The same inputs with the id arrays (characters, kinds, number slots) in the narrowest
    signed integer type that holds them: a 2048-trial pretraining batch pickles to 2 MB
    instead of 12, which is what a GPU's batch-building processes send the trainer every step.
    `OmniPredModel.to_tensors` widens them again on the device."""
    def narrow(group: ModelInputs) -> ModelInputs:
      ids = {k: _narrowest(getattr(group, k)) for k in ('names', 'kinds', 'numbers', 'texts')}
      return attrs.evolve(group, **ids)
    return attrs.evolve(self, items=narrow(self.items), meta=narrow(self.meta))

  @classmethod
  def stack(cls, parts: Sequence['StudyInputs']) -> 'StudyInputs':
    """Concatenates studies along B, zero-padding trials, items and metadata items (padding
    is not `present`, not context, and has y 0)."""
    return cls(
        items=ModelInputs.concatenate([q.items for q in parts], pad_axes=(1, 2)),
        meta=ModelInputs.concatenate([q.meta for q in parts]),
        features=concatenate_padded([q.features for q in parts], (1, 2)),
        is_context=concatenate_padded([q.is_context for q in parts], (1,)),
        present=concatenate_padded([q.present for q in parts], (1,)),
        y=concatenate_padded([q.y for q in parts], (1,)),
        study=(None if all(q.study is None for q in parts) else concatenate_padded(
            [q.study if q.study is not None else np.zeros(q.y.shape, dtype=np.int8)
             for q in parts], (1,))))


def _narrowest(ids: np.ndarray) -> np.ndarray:
  lo, hi = (int(ids.min()), int(ids.max())) if ids.size else (0, 0)
  for dtype in (np.int8, np.int16, np.int32):
    info = np.iinfo(dtype)
    if info.min <= lo and hi <= info.max:
      return ids.astype(dtype)
  return ids


def _is_finite(value: Any) -> bool:
  try:
    return math.isfinite(float(value))
  except (TypeError, ValueError):
    return False


def _plain(row: Any) -> dict[str, ParameterValue]:
  """A vz.ParameterDict or a plain mapping -> {name: python value}."""
  if isinstance(row, vz.ParameterDict):
    return {k: v.value for k, v in row.items()}
  if isinstance(row, vz.TrialSuggestion):
    return _plain(row.parameters)
  if not isinstance(row, Mapping):
    raise TypeError(f'Expected a parameter mapping or a Vizier trial, got {type(row).__name__}.')
  return {
      k: (v.value if isinstance(v, vz.ParameterValue) else v) for k, v in row.items()
  }
