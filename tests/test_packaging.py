"""Packaging: the distribution name, the install hints and the extras (no network access).

The name ``pyloader`` on the package index belongs to an unrelated project, so the distribution is
``pyloader-chunks`` (checked free with ``pip download --no-deps pyloader-chunks``: "No matching
distribution found"). Every install hint must use it.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from pyloader_core.version import DIST_NAME, install_hint

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = {".py", ".md", ".cfg", ".ini", ".toml"}
SKIP_DIRS = {".tox", ".venv", "build", "dist", ".git", "node_modules", "__pycache__"}
#: A pip command naming the old distribution: `pip install pyloader[...]`, `pip install pyloader`
#: (optionally quoted), but not `pyloader-chunks`, `pyloader_core`, ... (a word character or `-` follows).
OLD_HINT = re.compile(r"""pip install (?:-\S+ )*['"]?pyloader(?![\w-])""")
#: Extras that are not for users (development only).
DEV_EXTRAS = {"test", "bench"}
#: User extras that `all` leaves out on purpose: tf-cpu is the CPU build of what `all` has (tensorflow).
NOT_IN_ALL = {"tf-cpu"}


def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return cfg


def extras() -> dict[str, set[str]]:
    """``{extra: {requirement, ...}}`` from setup.cfg (requirements with spaces removed)."""
    section = setup_cfg()["options.extras_require"]
    return {
        name: {line.replace(" ", "") for line in value.splitlines() if line.strip() and not line.startswith("#")}
        for name, value in section.items()
    }


def project(requirement: str) -> str:
    """The normalised project name of a requirement (``zstandard>=0.22`` -> ``zstandard``)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def repo_files() -> list[Path]:
    out = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.startswith(".venv") or part.startswith(".tox") for part in rel.parts[:-1]):
            continue
        if path.suffix in SUFFIXES and path.is_file():
            out.append(path)
    return out


def test_distribution_name() -> None:
    assert DIST_NAME == "pyloader-chunks"
    assert setup_cfg()["metadata"]["name"] == DIST_NAME


def test_install_hint() -> None:
    assert install_hint() == "pip install pyloader-chunks"
    assert install_hint("remote") == "pip install 'pyloader-chunks[remote]'"
    assert not OLD_HINT.search(install_hint("remote")) and not OLD_HINT.search(install_hint())


@pytest.mark.parametrize(
    "text, old",
    [
        ("pip install pyloader[remote]", True),
        ("pip install 'pyloader[progress]'", True),
        ("pip install pyloader ", True),
        ("pip install -U pyloader", True),
        ("pip install pyloader-chunks[remote]", False),
        ("pip install 'pyloader-chunks[zstd]'", False),
        ("pip install pyloader_core", False),
        ("pip install zstandard", False),
    ],
)
def test_old_hint_pattern(text: str, old: bool) -> None:
    assert bool(OLD_HINT.search(text)) is old


def test_no_file_gives_the_old_name() -> None:
    files = repo_files()
    assert any(p.name == "README.md" for p in files) and any(p.suffix == ".py" for p in files)
    this = Path(__file__).resolve()
    bad = []
    for path in files:
        if path.resolve() == this:  # the patterns above name the old hints on purpose
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OLD_HINT.search(line) or re.search(r"(?<![\w-])pyloader\[", line):
                bad.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bad, "install hints naming the old distribution 'pyloader':\n" + "\n".join(bad)


def test_zstandard_in_a_user_extra_and_in_all() -> None:
    found = extras()
    users = {name for name in found if name not in DEV_EXTRAS | {"all"}}
    assert any("zstandard" in {project(r) for r in found[name]} for name in users)
    assert "zstandard" in {project(r) for r in found["zstd"]}
    assert "zstandard" in {project(r) for r in found["all"]}


def test_all_covers_every_user_extra() -> None:
    found = extras()
    in_all = found["all"]
    for name, requirements in found.items():
        if name in DEV_EXTRAS | NOT_IN_ALL | {"all"}:
            continue
        missing = requirements - in_all
        assert not missing, f"extra {name!r}: {sorted(missing)} not in [all]"


def test_zstandard_is_pinned_in_constraints() -> None:
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    assert any(re.fullmatch(r"zstandard==[\d.]+", line.strip()) for line in lines)


def test_readme_install_section_lists_every_extra() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = readme.split("## Install\n", 1)[1].split("\n## ", 1)[0]
    assert f"pip install {DIST_NAME}" in install
    for name in extras():
        assert f"`{name}`" in install, f"README's Install section does not list the {name!r} extra"
    all_row = next(line for line in install.splitlines() if line.startswith("| `all` |"))
    for requirement in extras()["all"]:
        assert project(requirement) in all_row, f"README: [all] row does not name {project(requirement)}"
