"""Importing the packages changes nothing in the process; programs apply settings on purpose."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str) -> str:
  env = {k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'JAX_ENABLE_X64')}
  proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True,
                        text=True, check=True, timeout=300)
  return proc.stdout.strip()


def test_importing_the_packages_sets_nothing_and_loads_no_torch():
  out = _run('import os, sys, vizier_omnipred, designers\n'
             'from vizier._src.pyvizier.oss import proto_converters as pc\n'
             'patched = pc.ParameterConfigConverter._set_child_parameter_configs.__func__'
             '.__module__ == "designers.vizier_fixes"\n'
             'print(os.environ.get("OMP_WAIT_POLICY"), "torch" in sys.modules, patched)')
  assert out == 'None False False'


def test_exports_and_submodules_load_on_first_use():
  out = _run('import vizier_omnipred, designers\n'
             'designers.vizier_fixes.apply()\n'
             'from vizier._src.pyvizier.oss import proto_converters as pc\n'
             'print(vizier_omnipred.OmniPredRegressor.__name__, designers.OmniPredDesigner.__name__,'
             ' pc.ParameterConfigConverter._set_child_parameter_configs.__func__.__module__)')
  assert out == 'OmniPredRegressor OmniPredDesigner designers.vizier_fixes'


def test_openmp_policy_is_set_only_before_torch_loads():
  out = _run('import os\nfrom vizier_omnipred import runtime\n'
             'first = runtime.configure_openmp()\nimport torch\n'
             'print(first, os.environ["OMP_WAIT_POLICY"], runtime.configure_openmp())')
  assert out == 'True PASSIVE False'


def test_jax_float64_before_and_after_jax_loads():
  out = _run('from vizier_omnipred import runtime\nruntime.configure_jax_float64()\n'
             'import jax, jax.numpy as jnp\nprint(jnp.zeros(1).dtype)')
  assert out == 'float64'
  out = _run('import jax, jax.numpy as jnp\nfrom vizier_omnipred import runtime\n'
             'runtime.configure_jax_float64()\nprint(jnp.zeros(1).dtype)')
  assert out == 'float64'
