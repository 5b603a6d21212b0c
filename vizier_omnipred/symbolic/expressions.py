"""Formulas as prefix token sequences: evaluate (NumPy or torch), print (SymPy), check.

A formula is `Formula(tokens, constants)`: `tokens` is the prefix (Polish) order of the tree,
operators by name, inputs as ``x0, x1, ...`` and every constant as the placeholder ``C``;
`constants` holds the values of the ``C``s in order. Keeping the values apart from the
skeleton is what lets BFGS refine them (`explain`) and the model write them as number tokens
(`vocabulary`).

    >>> f = Formula(('add', 'mul', 'C', 'x0', 'C'), (2.0, 1.0))   # 2*x0 + 1
    >>> f.evaluate(np.array([[0.0], [1.0]]))
    array([1., 3.])
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import attrs
import numpy as np

UNARY_OPS = ('inv', 'abs', 'sqr', 'sqrt', 'sin', 'cos', 'tan', 'atan', 'log', 'exp')
BINARY_OPS = ('add', 'sub', 'mul', 'div')
CONSTANT = 'C'


def arity(token: str) -> int:
  """2 for binary operators, 1 for unary, 0 for inputs and constants."""
  if token in BINARY_OPS:
    return 2
  if token in UNARY_OPS:
    return 1
  if token == CONSTANT or (token.startswith('x') and token[1:].isdigit()):
    return 0
  raise ValueError(f'Unknown formula token {token!r}.')


def is_complete(tokens: Sequence[str]) -> bool:
  """True when `tokens` is exactly one well-formed prefix tree."""
  need = 1
  for i, tok in enumerate(tokens):
    if need == 0:
      return False
    need += arity(tok) - 1
  return need == 0 and len(tokens) > 0


# One table per backend; each entry maps arguments to a value. NumPy warnings are the caller's
# business (invalid samples are rejected by their non-finite values).
_NUMPY = {
    'add': np.add, 'sub': np.subtract, 'mul': np.multiply, 'div': np.divide,
    'inv': lambda a: 1.0 / a, 'abs': np.abs, 'sqr': np.square, 'sqrt': np.sqrt,
    'sin': np.sin, 'cos': np.cos, 'tan': np.tan, 'atan': np.arctan, 'log': np.log,
    'exp': np.exp,
}


@functools.cache
def _torch_ops():  # cached: BFGS evaluates formulas thousands of times
  import torch  # pylint: disable=g-import-not-at-top
  return {
      'add': torch.add, 'sub': torch.sub, 'mul': torch.mul, 'div': torch.div,
      'inv': torch.reciprocal, 'abs': torch.abs, 'sqr': torch.square, 'sqrt': torch.sqrt,
      'sin': torch.sin, 'cos': torch.cos, 'tan': torch.tan, 'atan': torch.atan,
      'log': torch.log, 'exp': torch.exp,
  }


@functools.cache
def _sympy_ops():
  import sympy  # pylint: disable=g-import-not-at-top
  return {
      'add': lambda a, b: a + b, 'sub': lambda a, b: a - b, 'mul': lambda a, b: a * b,
      'div': lambda a, b: a / b, 'inv': lambda a: 1 / a, 'abs': sympy.Abs,
      'sqr': lambda a: a**2, 'sqrt': sympy.sqrt, 'sin': sympy.sin, 'cos': sympy.cos,
      'tan': sympy.tan, 'atan': sympy.atan, 'log': sympy.log, 'exp': sympy.exp,
  }


def _fold(tokens: Sequence[str], ops: dict, leaf) -> Any:
  """Evaluates a prefix sequence right to left with a stack; `leaf(token, const_index)`."""
  stack = []
  const_index = sum(1 for t in tokens if t == CONSTANT)
  for tok in reversed(tokens):
    n = arity(tok)
    if n == 0:
      if tok == CONSTANT:
        const_index -= 1
      stack.append(leaf(tok, const_index))
    elif n == 1:
      stack.append(ops[tok](stack.pop()))
    else:
      a = stack.pop()
      b = stack.pop()
      stack.append(ops[tok](a, b))
  if len(stack) != 1:
    raise ValueError(f'Not one prefix tree: {" ".join(tokens)}')
  return stack[0]


@attrs.frozen
class Formula:
  """A skeleton in prefix order plus the values of its constants."""

  tokens: tuple[str, ...] = attrs.field(converter=tuple)
  constants: tuple[float, ...] = attrs.field(converter=lambda c: tuple(float(v) for v in c),
                                             default=())

  def __attrs_post_init__(self):
    if not is_complete(self.tokens):
      raise ValueError(f'Not a complete prefix formula: {" ".join(self.tokens)!r}')
    n = self.num_constants
    if len(self.constants) != n:
      raise ValueError(f'Formula has {n} constant slots but {len(self.constants)} values.')

  @property
  def num_constants(self) -> int:
    return sum(1 for t in self.tokens if t == CONSTANT)

  @property
  def inputs(self) -> set[int]:
    return {int(t[1:]) for t in self.tokens if t.startswith('x')}

  def with_constants(self, constants: Sequence[float]) -> 'Formula':
    return Formula(self.tokens, constants)

  def evaluate(self, x: np.ndarray) -> np.ndarray:
    """x: [N, D] -> [N] float64 (non-finite where the formula is undefined)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all='ignore'):
      out = _fold(self.tokens, _NUMPY,
                  lambda t, i: self.constants[i] if t == CONSTANT else x[:, int(t[1:])])
      return np.broadcast_to(np.asarray(out, dtype=np.float64), (x.shape[0],)).copy()

  def evaluate_torch(self, x, constants):
    """Differentiable in `constants` (a 1-D tensor): x [N, D] tensor -> [N] tensor."""
    out = _fold(self.tokens, _torch_ops(),
                lambda t, i: constants[i] if t == CONSTANT else x[:, int(t[1:])])
    return out.expand(x.shape[0]) if out.dim() == 0 else out

  def to_sympy(self, names: Sequence[str] | None = None, digits: int | None = None):
    """SymPy expression; constants rounded to `digits` significant digits (None: exact).

    Round after simplifying, not before: a product of rounded constants is not the rounded
    product (0.5 printed as 0.4999).
    """
    import sympy  # pylint: disable=g-import-not-at-top
    symbols = {}

    def leaf(tok, i):
      if tok == CONSTANT:
        c = self.constants[i]
        return sympy.Float(c) if digits is None else sympy.Float(float(f'{c:.{digits}g}'), digits)
      j = int(tok[1:])
      name = names[j] if names is not None else tok
      return symbols.setdefault(name, sympy.Symbol(name, real=True))

    return _fold(self.tokens, _sympy_ops(), leaf)

  def __str__(self) -> str:
    return str(self.to_sympy(digits=4))


def simplified(expr, max_ops: int = 40, digits: int = 4) -> str:
  """A readable string: SymPy-simplified when small enough to simplify quickly."""
  import sympy  # pylint: disable=g-import-not-at-top
  if sympy.count_ops(expr) <= max_ops:
    try:
      expr = sympy.simplify(expr)
    except (TypeError, ValueError, RecursionError):  # sympy gives up on some abs/log mixes
      pass
  # sympy.N leaves floats inside function arguments at full precision: round every one.
  expr = expr.xreplace({f: sympy.Float(f, digits) for f in expr.atoms(sympy.Float)})
  return str(expr)


def round_significant(value: float, digits: int) -> float:
  if value == 0 or not math.isfinite(value):
    return value
  return float(f'{value:.{digits - 1}e}')
