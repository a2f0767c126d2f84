"""docs/METHOD.md exists and every numbered citation of it in the repository resolves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "METHOD.md"
DOC = "METHOD" + ".md"  # split, so that this file's own text holds no citation

#: one section reference: "3", "3.3", or "9 item 15" (section 9, item 15 = 9.15)
_REF = r"\d+(?:\.\d+)?(?: item \d+)?"
#: the citation, then a list of references joined by ", ", "; " or " and "
CITATION = re.compile(rf"{re.escape(DOC)}\s+({_REF}(?:(?:, |; | and ){_REF})*)")
HEADING = re.compile(r"^(?:## (\d+)\. |### (\d+\.\d+) )\S")


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


def repository_texts() -> list[Path]:
    files = [p for d in ("src", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py")]
    files += sorted(ROOT.glob("*.md")) + sorted((ROOT / "docs").glob("*.md"))
    return [p for p in files if p.is_file()]


def test_helpers_parse_citations_and_headings():
    text = (f"see {DOC} 3.3; 3.6 when bidirectional, {DOC} 2, 3, 4.3, 9 item 15 and "
            f"{DOC} 2. Also [{DOC}]({DOC}) and {DOC} N.M")
    assert cited(text) == ["3.3", "3.6", "2", "3", "4.3", "9.15", "2"]
    heads = "## 1. Weight spaces\n### 1.2 Dense MLPs\n## Notes\n#### 1.2.3 deeper\n"
    assert sections(heads) == {"1", "1.2"}


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
    missing = {
        str(path.relative_to(ROOT)): bad
        for path in repository_texts()
        if (bad := sorted(set(cited(path.read_text(encoding="utf-8"))) - known))
    }
    assert missing == {}, f"citations of {DOC} sections that do not exist: {missing}"
