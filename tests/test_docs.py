"""Every ```python block of docs/plugging-in-a-model.md runs as written in an empty folder and
leaves a .ncd file that decodes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import neurocodec

PAGE = Path(__file__).parent.parent / "docs" / "plugging-in-a-model.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_the_page_has_both_examples():
    assert len(BLOCKS) == 2
    for block in BLOCKS:  # "at most about 25 lines of user code"
        assert len([l for l in block.splitlines() if l.strip() and not l.startswith(("import", "from"))]) <= 30


@pytest.mark.parametrize("block", BLOCKS, ids=["autoregressive", "bitsback"])
def test_example_runs_and_leaves_a_decodable_file(block, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    files = list(tmp_path.glob("*.ncd"))
    assert len(files) == 1
    header = neurocodec.container.unpack(files[0].read_bytes()).header
    assert header.lossless and header.shape == (64, 64, 3)
