"""README.md's usage example runs and prints what its comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_the_usage_example_prints_what_its_comments_promise() -> None:
    text = README.read_text()
    block = re.search(r"## Using it\n\n```python\n(.*?)```", text, re.S)
    assert block is not None
    code = block.group(1)
    comments = re.findall(r"print\(.*\)\s+# (.*)", code)
    # "6: enter the graph at a node" promises "6"; a printed dict is promised whole
    promised = [c if c.startswith(("{", "[")) else c.split(":")[0] for c in comments]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == promised
