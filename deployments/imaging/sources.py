"""Which images a build may start from, and what a custom Dockerfile may fetch. No Django.

A custom Dockerfile runs on the platform's shared Docker engine, whose image cache holds every team's
images, and the engine fetches `ADD <url>` itself (outside the build's network namespace). So a
Dockerfile may only name the configured base images and the team's own repositories, in `FROM` and
`COPY --from`, and may not fetch URLs. The same rule answers whether a prebuilt image (framework
"image") belongs to the team.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from deployments.imaging.errors import BuildContextError

__all__ = ["ImageSources", "check_dockerfile"]

# Docker's reference grammar, component by component: no "..", no empty component, no variables.
_DOMAIN = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:[0-9]+)?$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageSources:
    """The images a team's build may use: exact base images, and repository prefixes it owns."""

    base_images: tuple[str, ...]
    own_prefixes: tuple[str, ...]  # "registry.example.com/ml/vision/": everything below is the team's

    def allows(self, reference: str) -> bool:
        if reference in self.base_images:
            return True
        if not well_formed(reference):
            return False
        return any(reference.startswith(prefix.rstrip("/") + "/") for prefix in self.own_prefixes)

    def describe(self) -> str:
        allowed = [*self.base_images, *(prefix.rstrip("/") + "/..." for prefix in self.own_prefixes)]
        return ", ".join(allowed) or "none"


def well_formed(reference: str) -> bool:
    """A fully qualified reference (registry/path[:tag][@digest]) with no '..' or variables in it."""
    name, _, digest = reference.partition("@")
    if digest and not _DIGEST.match(digest):
        return False
    domain, _, path = name.partition("/")
    if not path or not _DOMAIN.match(domain):
        return False
    components = path.split("/")
    last, _, tag = components[-1].partition(":")
    if tag and not _TAG.match(tag):
        return False
    return all(_COMPONENT.match(component) for component in [*components[:-1], last])


def check_dockerfile(text: str, sources: ImageSources) -> None:
    """Raises BuildContextError naming the line when the Dockerfile uses an image it may not, or a URL."""
    stages: set[str] = set()
    for number, instruction, arguments in _instructions(text):
        if instruction == "ONBUILD":
            # Runs in a later build FROM this image (one of the team's own): the same rules apply.
            instruction, arguments = _split(arguments)
        words = arguments.split()
        if instruction == "FROM":
            rest = [w for w in words if not w.startswith("--")]
            image = rest[0] if rest else ""
            if image.lower() not in stages and image != "scratch":
                _check_image(number, "FROM", image, sources)
            stages.add(str(len(stages)))
            if len(rest) >= 3 and rest[1].lower() == "as":
                stages.add(rest[2].lower())
        elif instruction == "COPY":
            for word in words:
                if word.lower().startswith("--from="):
                    source = word.split("=", 1)[1]
                    if source.lower() not in stages:
                        _check_image(number, "COPY --from", source, sources)
        elif instruction == "ADD":
            for word in words:
                # The builder removes quotes and escapes (`\` or the `# escape=` one) before it
                # decides whether a word is a URL: http:"//"host and http:\/\/host are URLs too.
                bare = re.sub(r"[\"'\\`]", "", word)
                if "://" in bare or bare.startswith("git@"):
                    raise BuildContextError(
                        f"Dockerfile line {number}: ADD may not fetch {word}: builds have no network; "
                        "put the file in the archive"
                    )
                if "$" in word and not word.startswith("--"):
                    # The builder expands ARG and ENV values before it decides whether to fetch.
                    raise BuildContextError(
                        f"Dockerfile line {number}: ADD may not use variables ({word}); name the file, or use COPY"
                    )


def _check_image(number: int, where: str, image: str, sources: ImageSources) -> None:
    if "$" in image:
        raise BuildContextError(f"Dockerfile line {number}: {where} may not use variables ({image})")
    if not sources.allows(image):
        raise BuildContextError(
            f"Dockerfile line {number}: {where} {image} is not allowed; a custom build may start from "
            f"{sources.describe()}"
        )


def _instructions(text: str) -> Iterable[tuple[int, str, str]]:
    """(line number, INSTRUCTION, arguments) with continuation lines joined, as the classic builder reads them."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives: only at the very top, before any instruction or comment
        match = re.match(r"^#\s*(\w+)\s*=\s*(\S+)\s*$", line)
        if not match:
            break
        if match[1].lower() == "escape":
            escape = match[2]
    pending, start = "", 0
    for index, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are dropped by the builder
        if not pending:
            start = index
        if stripped.endswith(escape):
            pending += stripped[: -len(escape)] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        yield start, *_split(full)
    if pending.strip():
        yield start, *_split(pending)


def _split(line: str) -> tuple[str, str]:
    """INSTRUCTION and its arguments: the builder splits them at any whitespace, a tab included."""
    parts = line.strip().split(maxsplit=1)
    return (parts[0].upper() if parts else ""), (parts[1].strip() if len(parts) > 1 else "")
