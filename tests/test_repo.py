"""The README's two commands and CI stay in step."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2
    # the main job: every figure of every domain at the default (quick) scale
    assert cmds[0].startswith("pip install") and cmds[0].endswith("gmmcollapse reproduce")
    assert cmds[1].startswith("pip install") and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = _readme_commands()[1]
    assert test_cmd in ci.splitlines()
    assert "set -euo pipefail" in ci


def test_pyproject_declares_the_real_dependencies():
    text = (ROOT / "pyproject.toml").read_text()
    deps = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy", "matplotlib")
    for dep in (*deps, "seaborn", "tqdm"):
        assert re.search(rf'"{dep}[>=<~ ]', text), dep
    for dep in ("pytest", "hypothesis"):
        assert dep in text.split("[project.optional-dependencies]", 1)[1]


def test_api_reference_is_current():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_api", ROOT / "docs" / "make_api.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (ROOT / "docs" / "api.md").read_text() == mod.render(), "run python docs/make_api.py"


def test_readme_python_example_prints_what_its_comments_show():
    """Run as a script, the README's example prints each value its comments give (to their
    digits): a line that only computes would print nothing."""
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.+?)\n```", text, re.DOTALL).group(1)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    printed = [float(x) for x in re.findall(r"-?\d+\.\d+", out)]
    shown = []  # inline comments' values, and comment lines that are only values
    for line in code.splitlines():
        body, _, comment = line.partition("#")
        comment = comment.split(":")[0]
        if body.strip():
            shown += re.findall(r"-?\d+\.\d+", comment)[-1:]
        elif re.fullmatch(r"[\s\[\]\d.,+-]+", comment):
            shown += re.findall(r"-?\d+\.\d+", comment)
    assert len(shown) >= 10
    for value in shown:
        digits = len(value.split(".")[1])
        assert any(abs(p - float(value)) <= 0.6 * 10**-digits for p in printed), (value, out)
