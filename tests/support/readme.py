"""The README's code blocks, for tests that run them the way a reader would: verbatim."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(?P<language>[\w-]*)\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)


def code_blocks(language: str = "sh", path: Path = README) -> list[str]:
    return [m["code"] for m in FENCE.finditer(path.read_text()) if m["language"] == language]


def code_block(containing: str, language: str = "sh", path: Path = README) -> str:
    """The one block of that language that contains the text; failing loudly if the README changed shape."""
    found = [code for code in code_blocks(language, path) if containing in code]
    assert len(found) == 1, f"{path.name}: {len(found)} {language} blocks contain {containing!r}, expected one"
    return found[0]
