"""benchmarks/RESULTS.md is what its script generates from benchmarks/results/*.md."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_results_index_is_up_to_date():
  proc = subprocess.run([sys.executable, '-m', 'benchmarks.results_index', '--check'],
                        cwd=ROOT, capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr


def test_every_results_file_has_a_section_and_its_plots_are_linked():
  text = (ROOT / 'benchmarks' / 'RESULTS.md').read_text()
  for path in (ROOT / 'benchmarks' / 'results').glob('*.md'):
    assert f'(results/{path.name})' in text, path.name
  for path in (ROOT / 'benchmarks' / 'results').glob('*.png'):
    stem_has_table = any(path.stem.startswith(md.stem)
                         for md in (ROOT / 'benchmarks' / 'results').glob('*.md'))
    if stem_has_table:
      assert f'(results/{path.name})' in text, path.name
