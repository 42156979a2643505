"""r1omni.plots: result figures are drawn without pyplot, so the library never switches its caller's
matplotlib backend nor keeps figures alive in pyplot's global list."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "r1omni"

PROBE = """
import sys
from pathlib import Path
import matplotlib
before = matplotlib.get_backend()
from r1omni.evaluate import write_confusion_png
metrics = {"labels": ["happy", "sad"], "confusion": [[3, 1, 0], [0, 2, 1]], "war": 0.71, "uar": 0.70}
write_confusion_png(metrics, Path(sys.argv[1]), "test")
print(before, matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_a_result_figure_leaves_the_callers_backend_alone(tmp_path):
    path = tmp_path / "confusion.png"
    done = subprocess.run([sys.executable, "-c", PROBE, str(path)], env={**os.environ, "MPLBACKEND": "svg"},
                          capture_output=True, text=True, check=True)
    before, after, pyplot_loaded = done.stdout.split()
    assert before == after == "svg" and pyplot_loaded == "False"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))


def test_no_library_module_uses_pyplot_or_picks_a_backend():
    pattern = re.compile(r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot")
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
