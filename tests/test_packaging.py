"""Packaging: every package ships in the wheel, and the tasks/ plugins are found after a plain install."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parent.parent


SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def source_packages() -> set[str]:
    """lizard_bench's packages plus the top-level folders mapped to packages (tasks/, configs/)."""
    found = {name for name, folder in SETUPTOOLS["package-dir"].items() if (REPO / folder / "__init__.py").is_file()}
    for init in (REPO / "lizard_bench").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(REPO).parts))
    return found


def test_every_package_is_listed_in_pyproject():
    assert set(SETUPTOOLS["packages"]) == source_packages()


@pytest.mark.slow
def test_wheel_contains_the_library_and_the_task_plugins(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("lizard_bench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    plugins = {f"lizard_bench_tasks/{p.name}" for p in (REPO / "tasks").glob("*.py")}
    assert plugins <= names
    suites = {f"lizard_bench_configs/{p.name}" for p in (REPO / "configs").glob("*.yaml")}
    assert suites <= names and "lizard_bench_configs/default.yaml" in names
    modules = {str(p.relative_to(REPO)) for p in (REPO / "lizard_bench").rglob("*.py")}
    assert modules <= names, sorted(modules - names)


@pytest.mark.parametrize("arguments", [["--help"], ["list", "tasks"], ["list", "models"], ["list", "variants"],
                                       ["list", "suites"]])
def test_help_and_listing_do_not_load_torch_or_transformers(arguments):
    """What makes the CLI answer at once: these commands never import the heavy libraries (seconds each)."""
    probe = ("import sys\nfrom lizard_bench.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'lm_eval', 'pandas',"
             " 'matplotlib'})\nprint('HEAVY', heavy)\n")
    result = subprocess.run([sys.executable, "-c", probe, *arguments], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
