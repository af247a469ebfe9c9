"""nbval-lax over the fast notebooks (00, 01) with their default parameters.

The slower notebooks are executed by papermill with small parameters in their own tests; nbval would
run them with the course defaults, which take minutes each.
"""

import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_nbval_lax_fast_notebooks():
    targets = [str(p) for p in sorted(NOTEBOOKS.glob("0[01]_*.ipynb"))]
    assert len(targets) == 2
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", *targets],
                          cwd=NOTEBOOKS, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
