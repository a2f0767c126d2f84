"""The documentation travels with the code and stays true to it.

* docs/METHOD.md exists, its sections are numbered in order, and every citation of it in
  code (comments, docstrings, string literals: help texts and report prose included),
  CLI help and the Markdown files resolves to a section that exists; every other mention
  of it is a link or a path to this repository's file.
* Paths, links, dotted ``symmerge.*`` names and ``symmerge ...`` command lines in the
  Markdown files exist: the files, the objects (imported), the commands and their flags.
* Measured numbers live in BENCHMARKS.md, not in the source's comments, docstrings or help;
  where those send the reader there, the section they name exists.
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = "METHOD" + ".md"  # split, so that this file's own text holds no citation
METHOD = ROOT / "docs" / DOC
PACKAGE = ROOT / "src" / "symmerge"

#: one section reference: "3", "3.3", or "9 item 15" (section 9, item 15 = 9.15)
_REF = r"\d+(?:\.\d+)?(?: item \d+)?"
#: the citation, then a list of references joined by ", ", "; " or " and "
CITATION = re.compile(rf"{re.escape(DOC)}\s+({_REF}(?:(?:, |; | and ){_REF})*)")
HEADING = re.compile(r"^(?:## (\d+)\. |### (\d+\.\d+) )\S")
#: a mention of the file: the path before it, if any, is part of the match
MENTION = re.compile(rf"[\w.~/-]*{re.escape(DOC)}")
#: what a placeholder citation looks like in prose about citations ("METHOD.md N.M")
PLACEHOLDER = re.compile(r"\s+N\.M\b")


def sections(text: str) -> set[str]:
    """Section numbers of ``## N. Title`` and ``### N.M Title`` headings."""
    found = set()
    for line in text.splitlines():
        m = HEADING.match(line)
        if m:
            found.add(m.group(1) or m.group(2))
    return found


def cited(text: str) -> list[str]:
    """Every section number cited as ``METHOD.md <refs>`` in ``text``."""
    refs = []
    for m in CITATION.finditer(text):
        for ref in re.findall(_REF, m.group(1)):
            refs.append(ref.replace(" item ", "."))
    return refs


def python_texts(source: str) -> list[str]:
    """The prose of a Python file: every string literal (docstrings and help texts, with
    implicitly concatenated pieces joined; an f-string's fields read as ``{}``) and every
    block of consecutive comment lines, joined into one line of text."""
    texts = []
    tree = ast.parse(source)
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            texts.append("".join(v.value if isinstance(v, ast.Constant) else "{}"
                                 for v in node.values))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in parts):
            texts.append(node.value)
    block: list[str] = []
    last = -2
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        own_line = tok.line.lstrip().startswith("#")  # else it follows code: a new block
        if block and not (own_line and tok.start[0] == last + 1):
            texts.append(" ".join(block))
            block = []
        block.append(re.sub(r"^#:?\s*", "", tok.string))
        last = tok.start[0]
    if block:
        texts.append(" ".join(block))
    return texts


def markdown_files() -> list[Path]:
    return sorted(ROOT.glob("*.md")) + sorted((ROOT / "docs").glob("*.md"))


def source_files() -> list[Path]:
    return sorted(p for d in ("src", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py"))


def repository_texts() -> dict[Path, list[str]]:
    """Every text that may cite METHOD.md: the Markdown files whole, the Python files'
    prose (:func:`python_texts`), the benchmark shell scripts whole."""
    texts = {p: [p.read_text(encoding="utf-8")] for p in markdown_files()}
    texts.update({p: python_texts(p.read_text(encoding="utf-8")) for p in source_files()})
    texts.update({p: [p.read_text(encoding="utf-8")] for p in (ROOT / "benchmarks").glob("*.sh")})
    return texts


def bad_mentions(text: str, where: Path) -> list[str]:
    """Mentions of METHOD.md in ``text`` that neither cite a section nor link to (or name
    the path of) this repository's docs/METHOD.md."""
    bad = []
    for m in MENTION.finditer(text):
        token, before, after = m.group(0), text[: m.start()], text[m.end():]
        link_target = before.endswith("](")
        if token != DOC or link_target:  # a path: it must be ours
            bases = [where.parent] if link_target else [where.parent, ROOT]
            if not any((base / token).resolve() == METHOD for base in bases):
                bad.append(f"{token!r} is not {METHOD.relative_to(ROOT)}")
                continue
        if (CITATION.match(text, m.end() - len(DOC)) or link_target or token != DOC
                or (before.endswith("[") and after.startswith("]("))
                or PLACEHOLDER.match(after)):
            continue
        bad.append(f"{DOC} without a section: ...{text[max(0, m.start() - 40):m.end() + 20]!r}")
    return bad


# ----------------------------------------------------------------- the helpers
def test_helpers_parse_citations_and_headings():
    text = (f"see {DOC} 3.3; 3.6 when bidirectional, {DOC} 2, 3, 4.3, 9 item 15 and "
            f"{DOC} 2. Also [{DOC}]({DOC}) and {DOC} N.M")
    assert cited(text) == ["3.3", "3.6", "2", "3", "4.3", "9.15", "2"]
    heads = "## 1. Weight spaces\n### 1.2 Dense MLPs\n## Notes\n#### 1.2.3 deeper\n"
    assert sections(heads) == {"1", "1.2"}


def test_python_texts_join_comments_and_literals():
    source = (f'x = ("see {DOC} "\n     "4.2")\n'
              f'# the presets ({DOC}\n#: 4.6) and\n'
              f'y = 1  # alone\n'
              f'z = f"{DOC} {{section}}"\n')
    texts = python_texts(source)
    assert f"see {DOC} 4.2" in texts
    assert f"the presets ({DOC} 4.6) and" in texts
    assert "alone" in texts
    assert cited(" ".join(texts)) == ["4.2", "4.6"]
    assert bad_mentions(f"{DOC} {{}}", ROOT / "src" / "x.py")  # a citation built at runtime


def test_bad_mentions_accept_citations_and_our_links_only():
    readme, doc = ROOT / "README.md", ROOT / "docs" / "ARCHITECTURE.md"
    for ok in (f"{DOC} 3.3", f"docs/{DOC} 4.6", f"[{DOC}]({DOC})", f"the \"{DOC} N.M\" form"):
        assert bad_mentions(ok, doc if ok.startswith("[") else readme) == [], ok
    assert bad_mentions(f"[docs/{DOC}](docs/{DOC})", readme) == []
    for wrong in (f"see {DOC} for details", f"[x](../shared/docs/{DOC})",
                  f"shared/docs/{DOC} 3.3", f"[x]({DOC})"):
        assert bad_mentions(wrong, readme), wrong


# ----------------------------------------------------------------- METHOD.md
def test_method_sections_are_numbered_in_order():
    numbers = [n for line in METHOD.read_text(encoding="utf-8").splitlines()
               if (m := HEADING.match(line)) and (n := m.group(1) or m.group(2))]
    top = [int(n) for n in numbers if "." not in n]
    assert top == list(range(1, len(top) + 1)) and len(top) >= 9
    for n in numbers:
        if "." in n:
            major, minor = (int(x) for x in n.split("."))
            previous = numbers[numbers.index(n) - 1]
            expected = f"{major}.{minor - 1}" if minor > 1 else str(major)
            assert previous == expected, f"section {n} follows {previous}"


def test_citations_resolve():
    known = sections(METHOD.read_text(encoding="utf-8"))
    texts = repository_texts()
    assert any(p.suffix == ".py" and cited(" ".join(t)) for p, t in texts.items())
    missing = {
        str(path.relative_to(ROOT)): bad
        for path, parts in texts.items()
        if (bad := sorted({ref for t in parts for ref in cited(t)} - known))
    }
    assert missing == {}, f"citations of {DOC} sections that do not exist: {missing}"


def test_every_mention_of_method_md_cites_a_section_or_links_to_ours():
    """No text cites METHOD.md without a section, builds a citation at runtime, or points
    at a METHOD.md that is not docs/METHOD.md (another checkout's, a shared folder's)."""
    bad = {
        str(path.relative_to(ROOT)): found
        for path, parts in repository_texts().items()
        if path != Path(__file__).resolve()
        and (found := [b for t in parts for b in bad_mentions(t, path)])
    }
    assert bad == {}


def _cli():
    import typer.main

    from symmerge.cli.app import _register, app

    _register()
    return typer.main.get_command(app)


def _commands(command, path=("symmerge",)):
    """``(path, click command)`` of every command and group of the CLI."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_cli_help_cites_existing_sections():
    """Help texts as the CLI shows them (composed at runtime, e.g. from the registry)."""
    known = sections(METHOD.read_text(encoding="utf-8"))
    problems = {}
    for path, command in _commands(_cli()):
        helps = [command.help or "", command.short_help or ""]
        helps += [getattr(p, "help", None) or "" for p in command.params]
        text = "\n".join(helps)
        bad = sorted(set(cited(text)) - known) + bad_mentions(text, ROOT / "src")
        if bad:
            problems[" ".join(path)] = bad
    assert problems == {}


# ----------------------------------------------------------------- the Markdown files
def _code(text: str) -> list[str]:
    """Fenced code blocks and inline code spans of Markdown ``text``."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    rest = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return blocks + re.findall(r"`([^`]+)`", rest)


def test_markdown_links_resolve():
    missing = []
    for md in markdown_files():
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text(encoding="utf-8")):
            path = target.split("#")[0]
            if path and not re.match(r"[a-z]+:", path) and not (md.parent / path).exists():
                missing.append(f"{md.relative_to(ROOT)}: {target}")
    assert missing == []


def test_repository_paths_in_docs_exist():
    """``tests/...py``, ``benchmarks/...``, ``src/...`` and ``docs/...`` paths named in the
    Markdown files and the code, and ``file.py::test_name`` test functions."""
    pattern = re.compile(r"(?<![\w./-])((?:src|tests|benchmarks|docs)/[\w./-]*\w\.(?:py|sh|md))"
                         r"(?:::(\w+))?")
    missing = []
    files = markdown_files() + source_files()
    for f in files:
        for path, test in pattern.findall(f.read_text(encoding="utf-8")):
            target = ROOT / path
            if not target.is_file():
                missing.append(f"{f.relative_to(ROOT)}: {path}")
            elif test and not re.search(rf"^def {test}\(", target.read_text(encoding="utf-8"),
                                        flags=re.M):
                missing.append(f"{f.relative_to(ROOT)}: {path}::{test}")
    assert missing == []


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` (``symmerge.pkg.module.attr...``) imports and resolves."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _subpackages() -> set[str]:
    return {p.stem for p in PACKAGE.iterdir()
            if (p.is_dir() and (p / "__init__.py").exists()) or
            (p.suffix == ".py" and not p.name.startswith("_"))}


FILE_SUFFIX = re.compile(r"\.(py|sh|md|json|ya?ml|csv|gz|npy|safetensors|pth|pt|ckpt|txt)$")


def doc_names(text: str, subpackages: set[str], markdown: bool = True) -> set[str]:
    """The ``symmerge.*`` names of ``text``: written out (``symmerge.models.runs.encode``)
    and, in Markdown, imported in its code (``from symmerge.align import MatchOptions``)
    and whole code spans that name a subpackage's object (``models.blocks.phi_of_canon``)."""
    names = set(re.findall(r"(?<![\w.-])symmerge(?:\.[A-Za-z_]\w*)+", text))
    if not markdown:
        return names
    for code in _code(text):
        for module, imported in re.findall(
            r"^[ \t]*from (symmerge(?:\.\w+)*) import (\([^)]*\)|[^\n]*)", code, flags=re.M
        ):
            imported = re.sub(r"#[^\n]*", "", imported).strip("()")
            names.update(f"{module}.{n.strip()}" for n in imported.split(",") if n.strip())
        span = code.strip()
        if (re.fullmatch(r"[a-z_]\w*(?:\.\w+)+", span) and span.split(".")[0] in subpackages
                and not FILE_SUFFIX.search(span)):
            names.add(f"symmerge.{span}")
    return names


def test_dotted_names_in_docs_resolve():
    subpackages = _subpackages()
    assert doc_names("`models.runs.encode`, symmerge.zoo.Zoo and `errors.py`\n```python\n"
                     "from symmerge.align import (MatchOptions,\n    weight_matching)\n```",
                     subpackages) == {"symmerge.models.runs.encode", "symmerge.zoo.Zoo",
                                      "symmerge.align", "symmerge.align.MatchOptions",
                                      "symmerge.align.weight_matching"}
    unresolved = {}
    for f in markdown_files() + sorted(PACKAGE.rglob("*.py")):
        names = doc_names(f.read_text(encoding="utf-8"), subpackages, f.suffix == ".md")
        if bad := sorted(n for n in names if not _resolves(n)):
            unresolved[str(f.relative_to(ROOT))] = bad
    assert unresolved == {}


def _options(command) -> set[str]:
    opts = {"--help"}
    for p in command.params:
        opts.update(getattr(p, "opts", ()))
        opts.update(getattr(p, "secondary_opts", ()))
    return opts


def doc_invocations(text: str) -> list[list[str]]:
    """The words of every ``symmerge ...`` command line in the code of Markdown ``text``
    (continuation lines joined; up to a shell separator or comment)."""
    found = []
    for code in _code(text):
        code = re.sub(r"\\\n\s*", " ", code)
        for m in re.finditer(r"(?:^|[;&|(:]\s*|\bdo\s+)symmerge\s+([^\n;&|#>)]*)", code,
                             flags=re.M):
            found.append(m.group(1).split())
    return found


def check_invocation(root, words: list[str]) -> list[str]:
    """What is wrong with ``symmerge WORDS``: an unknown command, flag, preset or method."""
    from symmerge.methods import method_names
    from symmerge.models.train_config import PRESETS

    command, path = root, ["symmerge"]
    while getattr(command, "commands", None) and words and re.fullmatch(r"[a-z][a-z-]*",
                                                                        words[0]):
        if words[0] not in command.commands:
            return [f"{' '.join(path)} has no command {words[0]!r}"]
        command = command.commands[words[0]]
        path.append(words.pop(0))
    problems = []
    options = _options(command)
    for i, word in enumerate(words):
        flag = word.split("=")[0]
        if re.fullmatch(r"--?[a-z][\w-]*", flag) and flag not in options:
            problems.append(f"{' '.join(path)} has no option {flag}")
        value = word.split("=", 1)[1] if "=" in word else (
            words[i + 1] if i + 1 < len(words) else "")
        if not re.fullmatch(r"[a-z0-9][\w,.-]*", value):  # a placeholder: NAME, $VAR, ...
            continue
        if flag == "--preset" and value not in PRESETS:
            problems.append(f"unknown preset {value!r}")
        if flag in ("--method", "--methods"):
            unknown = set(value.split(",")) - set(method_names())
            if unknown:
                problems.append(f"unknown method {', '.join(sorted(unknown))}")
    return problems


def test_command_lines_in_docs_exist():
    """Every ``symmerge ...`` line in README.md, BENCHMARKS.md and docs/*.md names a
    command that exists, with flags it has (presets and methods that exist too)."""
    root = _cli()
    assert check_invocation(root, ["zoo", "inr", "--limit", "5", "--nope", "1"]) == [
        "symmerge zoo inr has no option --nope"]
    assert check_invocation(root, ["zoo", "bake"]) == ["symmerge zoo has no command 'bake'"]
    assert check_invocation(root, ["train", "--preset", "nope", "--print-config"]) == [
        "unknown preset 'nope'"]
    assert doc_invocations("x\n```bash\nsymmerge merge a b \\\n  --alpha 0.5  # c\n```\n"
                           "and `symmerge encode --run R`") == [
        ["merge", "a", "b", "--alpha", "0.5"], ["encode", "--run", "R"]]
    problems, lines = {}, 0
    for md in markdown_files():
        for words in doc_invocations(md.read_text(encoding="utf-8")):
            lines += 1
            if bad := check_invocation(root, list(words)):
                problems[f"{md.relative_to(ROOT)}: symmerge {' '.join(words)}"] = bad
    assert lines > 20 and problems == {}


# ----------------------------------------------------------------- measured numbers
#: a reference to a section of BENCHMARKS.md by its title: ``BENCHMARKS.md, "INR zoos"``
BENCH_SECTION = re.compile(r"BENCHMARKS\.md,?\s+\(?\"([^\"]+)\"")


def test_benchmarks_sections_named_in_code_and_docs_exist():
    """Where the code or the docs send the reader to BENCHMARKS.md for a number, the
    section they name is there (a heading that holds the quoted title)."""
    headings = [line for line in (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
                .splitlines() if re.match(r"#{2,4} ", line)]
    texts = {p: [p.read_text(encoding="utf-8")] for p in markdown_files()}
    texts.update({p: python_texts(p.read_text(encoding="utf-8"))
                  for p in sorted(PACKAGE.rglob("*.py"))})
    named, missing = 0, []
    for path, parts in texts.items():
        for title in (m.group(1) for t in parts for m in BENCH_SECTION.finditer(t)):
            named += 1
            if not any(" ".join(title.split()) in h for h in headings):
                missing.append(f"{path.relative_to(ROOT)}: {title!r}")
    assert named >= 5 and missing == []


#: how a measured result reads: a speed-up, a slow-down, or a time something took
MEASURED = re.compile(
    r"\d[\d.,]*\s*[x×]\s+(?:faster|slower)"
    r"|\d[\d.,]*\s*%\s+(?:faster|slower)"
    r"|\b(?:takes?|took|trains? in|runs? in)\s+(?:about\s+|~)?\d[\d.,]*\s*"
    r"(?:s|ms|min|minutes?|seconds?|h|hours?)\b"
    r"|(?:\babout|~)\s*\d[\d.,]*\s*(?:ms|min|minutes?|seconds?|hours?)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("text", [
    "parses the file ~30x faster than", "a step takes 19 s instead of 37 s",
    "trains 17% faster", "default (about 5 min on 2 cores)",
])
def test_measured_pattern(text):
    assert MEASURED.search(text)


def test_measured_numbers_live_in_benchmarks():
    """Comments, docstrings and help texts of the package and the benchmark scripts give
    reasons, not measurements: those are in BENCHMARKS.md (with machine and command)."""
    found = {
        str(p.relative_to(ROOT)): hits
        for p in sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
        if (hits := [m.group(0) for t in python_texts(p.read_text(encoding="utf-8"))
                     for m in MEASURED.finditer(t)])
    }
    assert found == {}
