"""The documents match the tree: paths they name exist, every FASTDL_* variable the code reads is
documented in docs/, the README's commands are the ones CI runs and the CLI accepts, and every
result file in benchmarks/results/ is one a document cites.

The documents live in the checkout, beside the tests; with the tests alone (an installed package
without its sources) the module skips.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"

if not (README.is_file() and DOCS.is_dir() and (REPO / "fastdl").is_dir()):
    pytest.skip("README.md and docs/ are not beside the tests (no source checkout)",
                allow_module_level=True)

#: Documents whose paths are checked (those that exist: examples/README.md comes with examples/).
DOCUMENTS = [README, *sorted(DOCS.glob("*.md")), REPO / "benchmarks" / "README.md",
             REPO / "examples" / "README.md"]

#: Paths named although another branch creates them; checked as soon as they exist.
PENDING: set[str] = set()

# A repository path: starts at a top-level folder, not inside a longer path or a URL.
_PATH = re.compile(r"(?<![\w/.~$-])((?:fastdl|csrc|tests|benchmarks|examples|docs|\.ci)/[\w.*/-]*)")
# A Markdown link or image target, relative to the document.
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def missing_paths(doc: Path, repo: Path) -> list[str]:
    """Paths named in ``doc`` (repo paths anywhere in its text, and link targets) that do not exist."""
    text = doc.read_text(encoding="utf-8")
    missing = []
    for target in _LINK.findall(text):
        if _URL.match(target) or target.startswith(("#", "mailto:")):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        rel = path.relative_to(repo).as_posix() if path.is_relative_to(repo) else str(path)
        if not path.exists() and rel not in PENDING:
            missing.append(f"link {target}")
    for name in _PATH.findall(_URL.sub(" ", text)):
        name = name.rstrip(".")
        found = any(repo.glob(name)) if "*" in name else (repo / name).exists()
        if not found and name not in PENDING:
            missing.append(name)
    return missing


@pytest.mark.parametrize("doc", [d for d in DOCUMENTS if d.is_file()], ids=lambda d: d.relative_to(REPO).as_posix())
def test_every_path_a_document_names_exists(doc):
    assert missing_paths(doc, REPO) == [], f"{doc.relative_to(REPO)} names paths that do not exist"


def test_readme_and_docs_name_no_document_the_repository_lacks():
    """A bare document name (``DESIGN.md``) must be a file beside the page or at the root."""
    for doc in [README, *DOCS.glob("*.md")]:
        for name in re.findall(r"(?<![\w/.-])([A-Z][A-Z_]*\.md)\b", doc.read_text(encoding="utf-8")):
            assert (doc.parent / name).is_file() or (REPO / name).is_file(), f"{doc.name} names {name}"


def test_the_architecture_page_names_paths():
    """The check above is only worth something if the page it guards names the tree."""
    text = (DOCS / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(_PATH.findall(text))
    for path in ("fastdl/layers.py", "fastdl/ops.py", "fastdl/backends/cpp.py", "fastdl/backends/contract.py",
                 "csrc/bindings.cpp", "tests/naive.py", "tests/conftest.py"):
        assert path in named, path


def test_the_path_check_catches_a_missing_path(tmp_path):
    (tmp_path / "fastdl").mkdir()
    (tmp_path / "fastdl" / "here.py").write_text("")
    doc = tmp_path / "doc.md"
    doc.write_text("See `fastdl/here.py`, `fastdl/gone.py`, fastdl/also_gone.py, [a](fastdl/here.py),\n"
                   "[b](nowhere.md), `fastdl/*.py`, `csrc/*.cpp` and https://example.com/fastdl/x.py.\n")
    assert missing_paths(doc, tmp_path) == ["link nowhere.md", "fastdl/gone.py", "fastdl/also_gone.py",
                                            "csrc/*.cpp"]


# --------------------------------------------------------------------------- environment variables

_READ_PY_CPP = re.compile(r"[\"'](FASTDL_[A-Z0-9_]+)[\"']")  # a string that is exactly the name
_READ_TOML = re.compile(r"\benv\.(FASTDL_[A-Z0-9_]+)")       # scikit-build-core's if.env.NAME


def variables_read() -> set[str]:
    """FASTDL_* variables the package, the C++ sources, the build and the tests read."""
    names: set[str] = set()
    for folder in ("fastdl", "csrc", "tests"):
        for f in (REPO / folder).rglob("*"):
            if f.suffix in (".py", ".cpp", ".h") and f.resolve() != Path(__file__).resolve():
                names |= set(_READ_PY_CPP.findall(f.read_text(encoding="utf-8")))
    names |= set(_READ_TOML.findall((REPO / "pyproject.toml").read_text(encoding="utf-8")))
    # CMake's own list variables (set(FASTDL_AVX2 ...)) are build names, not environment variables
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    return names - set(re.findall(r"\bset\((FASTDL_[A-Z0-9_]+)", cmake))


def test_every_environment_variable_is_documented():
    read = variables_read()
    assert {"FASTDL_BACKEND", "FASTDL_DATA", "FASTDL_CPU", "FASTDL_NO_CPP"} <= read  # the scan works
    documented = set()
    for page in DOCS.glob("*.md"):
        documented |= set(re.findall(r"\bFASTDL_[A-Z0-9_]+\b", page.read_text(encoding="utf-8")))
    assert sorted(read - documented) == [], "read by the code but not documented in docs/"


# --------------------------------------------------------------------------- the README's commands

def _readme_commands() -> list[str]:
    """The command lines of the first shell block of the README's "Two commands" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_readme_has_two_commands():
    assert len(_readme_commands()) == 2


def test_readme_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    last = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")][-1]
    assert _readme_commands()[1] == last


def test_readme_first_command_is_one_the_cli_accepts():
    """Install with pip, then the `fastdl train` that the installed console script runs."""
    first = _readme_commands()[0]
    steps = [shlex.split(s) for s in first.split("&&")]
    assert ["python3", "-m", "venv", ".venv"] in steps and [".venv/bin/pip", "install", "."] in steps
    apt = next(s for s in steps if s[0] == "apt-get")
    assert apt[-1] in (REPO / ".ci" / "run").read_text(encoding="utf-8")  # the data package CI installs
    assert re.search(r'^fastdl = "fastdl\.cli:main"$', (REPO / "pyproject.toml").read_text(), re.M)
    run = next(s for s in steps if s[0] == ".venv/bin/fastdl")
    from fastdl.cli import build_parser

    try:
        args = build_parser().parse_args(run[1:])
    except SystemExit as exc:  # argparse rejects the command line
        pytest.fail(f"fastdl rejects the README's command {run[1:]} (exit {exc.code})")
    assert args.command == "train"


def test_readme_command_lines_are_ones_the_cli_accepts():
    from fastdl.cli import build_parser

    block = README.read_text(encoding="utf-8").split("## Command line", 1)[1].split("```bash", 1)[1]
    lines = [shlex.split(ln, comments=True) for ln in block.split("```", 1)[0].splitlines()]
    lines = [ln for ln in lines if ln]
    assert len(lines) >= 5 and all(ln[0] == "fastdl" for ln in lines)
    for argv in lines:
        try:
            args = build_parser().parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"fastdl rejects the README's {' '.join(argv)} (exit {exc.code})")
        assert args.command == argv[1]


# --------------------------------------------------------------------------- dated results

def test_every_result_file_is_cited():
    """benchmarks/results/ keeps only the dated files a document cites (git keeps the rest)."""
    text = "\n".join(d.read_text(encoding="utf-8") for d in DOCUMENTS if d.is_file())
    results = REPO / "benchmarks" / "results"
    uncited = [f.name for f in sorted(results.iterdir()) if f.name not in text] if results.is_dir() else []
    assert uncited == [], "result files no document cites: cite them or git rm them"
