"""The README's code blocks, for tests that run them the way a reader would: verbatim.

A README example that a test runs as written cannot drift from what works. Pick a block by what it
contains (`code_block("slipway deploy")`) or by the paragraph that introduces it
(`block(intro_starts_with="A CI job")`); both fail loudly when the README changed shape.
"""

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
# Fences may be indented, as inside a list item; the block's lines lose that indentation.
_FENCE = re.compile(r"^( *)(```+|~~~+)\s*([\w+-]*)\s*$")


@dataclass(frozen=True)
class CodeBlock:
    language: str  # what follows the opening fence ("sh", "python", "" ...)
    text: str  # the block's lines, without the fences
    heading: str  # the nearest heading above, without its #s
    intro: str  # the paragraph just above the block, joined into one line
    line: int  # 1-based line number of the opening fence, for messages

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.heading!r}: {self.intro[:60]!r}...)"


def blocks(path: Path = README) -> list[CodeBlock]:
    found = []
    lines = path.read_text().splitlines()
    heading, paragraph, paragraph_ended = "", [], False
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            indent, marker, language = fence.groups()
            end = index + 1
            while end < len(lines) and not lines[end].strip().startswith(marker):
                end += 1
            if end == len(lines):
                raise ValueError(f"{path.name}:{index + 1}: code block never closed")
            text = "\n".join(line.removeprefix(indent) for line in lines[index + 1 : end]) + "\n"
            found.append(CodeBlock(language, text, heading, " ".join(paragraph), index + 1))
            paragraph, index = [], end + 1
            continue
        if line.startswith("#"):
            heading, paragraph = line.lstrip("#").strip(), []
        elif not line.strip():
            paragraph_ended = True
        else:
            paragraph = [line.strip()] if paragraph_ended else [*paragraph, line.strip()]
            paragraph_ended = False
        index += 1
    return found


def block(*, intro_starts_with: str, path: Path = README) -> CodeBlock:
    """The one block whose introducing paragraph starts with the given words."""
    matches = [b for b in blocks(path) if b.intro.startswith(intro_starts_with)]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} blocks in {path.name} follow a paragraph starting {intro_starts_with!r}")
    return matches[0]


def code_blocks(language: str = "sh", path: Path = README) -> list[str]:
    return [b.text for b in blocks(path) if b.language == language]


def code_block(containing: str, language: str = "sh", path: Path = README) -> str:
    """The one block of that language that contains the text; failing loudly if the README changed shape."""
    found = [code for code in code_blocks(language, path) if containing in code]
    assert len(found) == 1, f"{path.name}: {len(found)} {language} blocks contain {containing!r}, expected one"
    return found[0]
