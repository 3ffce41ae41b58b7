"""Checks for the user-supplied parts of a version: each error names the field and the rule.

Everything here is treated as data: a requirement line never reaches a shell, a label never
reaches a Dockerfile instruction unquoted. The rules are strict so that later stages can rely
on them.
"""

import json
import math
import re
from typing import Any

from django.core.exceptions import ValidationError
from packaging.requirements import InvalidRequirement, Requirement

from serving.contract import DATATYPES

LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{7,64}$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,62}$")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
# registry[:port]/path[:tag][@sha256:digest], lowercase repository as the distribution spec requires.
IMAGE_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]{1,2}[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]{1,2}[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
MAX_REQUIREMENTS = 200
# Far deeper than any settings, metrics or signature; Python's json raises RecursionError (a 500)
# near 1,000 levels, and the code that walks a value recursively would too.
MAX_JSON_DEPTH = 64


def json_too_deep(value) -> bool:
    """Whether a parsed JSON value nests deeper than MAX_JSON_DEPTH (walked without recursion)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def load_json(text: str | bytes) -> Any:
    """json.loads, refusing a document nested deeper than MAX_JSON_DEPTH with a JSONDecodeError, as
    every other document that cannot be taken: what parses JSON from users parses it here."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep_error(text) from None
    if json_too_deep(value):
        raise too_deep_error(text)
    return value


def too_deep_error(text: str | bytes = "") -> json.JSONDecodeError:
    """The error, at the bracket that goes one level too deep (so messages give its line and column)."""
    doc = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    message = f"nested deeper than {MAX_JSON_DEPTH} levels"
    depth, in_string, escaped = 0, False, False
    for position, char in enumerate(doc):
        if in_string:
            escaped, in_string = (not escaped and char == "\\"), (escaped or char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return json.JSONDecodeError(message, doc, position)
        elif char in "]}":
            depth -= 1
    return json.JSONDecodeError(message, doc, 0)


def clean_label(value: str) -> str:
    value = (value or "").strip()
    if value and not LABEL_RE.match(value):
        raise ValidationError(
            {"label": "Use letters, digits, '.', '_', '+' or '-' (a semver or git tag), at most 128 characters."}
        )
    return value


def clean_requirements(value) -> list[str]:
    if isinstance(value, str):
        lines = value.splitlines()
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        lines = value
    else:
        raise ValidationError({"requirements": "Give pip requirement lines, as text or a list of strings."})
    cleaned = []
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise ValidationError(
                {
                    "requirements": f"Line {number}: pip options such as '{line.split()[0]}' are not allowed; "
                    "list packages only."
                }
            )
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            if option := _trailing_option(line):  # `pkg --hash=...`: say so, rather than quote the parser
                raise ValidationError(
                    {
                        "requirements": f"Line {number}: pip options such as '{option}' are not allowed; "
                        "list packages only."
                    }
                ) from None
            raise ValidationError(
                {"requirements": f"Line {number}: '{line}' is not a valid requirement ({exc})."}
            ) from None
        if requirement.url:
            raise ValidationError(
                {"requirements": f"Line {number}: direct URLs are not allowed; name a package from the index."}
            )
        cleaned.append(str(requirement))
    if len(cleaned) > MAX_REQUIREMENTS:
        raise ValidationError({"requirements": f"At most {MAX_REQUIREMENTS} requirements."})
    return cleaned


def _trailing_option(line: str) -> str:
    """The pip option after a valid requirement (`numpy; python_version>'3' --hash=sha256:…`), or ""."""
    for option in re.finditer(r"\s(-\S+)", line):
        try:
            Requirement(line[: option.start()])
        except InvalidRequirement:
            continue
        return option.group(1)
    return ""


def non_finite_error(value, path: str) -> str | None:
    """What is wrong with the first infinite or NaN number in a JSON value, named by its path
    (`metrics.a`), or None. JSON has no such numbers and jsonb refuses them, yet Python's json reads
    1e999 as infinity and accepts NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return f"{path} must be a finite number, not NaN."
        return f"{path} must be a finite number: the number given is beyond what a 64-bit float holds (±1.8e308)."
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        error = non_finite_error(item, f"{path}.{key}" if isinstance(value, dict) else f"{path}[{key}]")
        if error:
            return error
    return None


def clean_metrics(value) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValidationError({"metrics": "Give an object mapping metric names to numbers."})
    for key, number in value.items():
        if not NAME_RE.match(str(key)):
            raise ValidationError({"metrics": f"'{key}' is not a valid metric name."})
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValidationError({"metrics": f"The metric '{key}' must be a number, not {number!r}."})
    if error := non_finite_error(value, "metrics"):
        raise ValidationError({"metrics": error})
    return value


def clean_parameters(value) -> dict:
    if not isinstance(value, dict):
        raise ValidationError({"parameters": "Give an object mapping parameter names to values."})
    for key, item in value.items():
        if not NAME_RE.match(str(key)):
            raise ValidationError({"parameters": f"'{key}' is not a valid parameter name."})
        if not isinstance(item, str | int | float | bool) and item is not None:
            raise ValidationError({"parameters": f"The parameter '{key}' must be a string, number or boolean."})
        if isinstance(item, str) and "\x00" in item:  # jsonb cannot hold it
            raise ValidationError({"parameters": f"The parameter '{key}': Null characters are not allowed."})
    if error := non_finite_error(value, "parameters"):
        raise ValidationError({"parameters": error})
    return value


def _clean_tensors(tensors, side: str) -> list[dict]:
    if not isinstance(tensors, list):
        raise ValidationError({"signature": f"'{side}' must be a list of tensors."})
    cleaned = []
    for index, tensor in enumerate(tensors):
        where = f"{side}[{index}]"
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or not tensor["name"]:
            raise ValidationError({"signature": f"{where} needs a 'name'."})
        if "\x00" in tensor["name"]:  # jsonb cannot hold it
            raise ValidationError({"signature": f"{where}: Null characters are not allowed in a name."})
        if tensor.get("datatype") not in DATATYPES:
            raise ValidationError(
                {
                    "signature": f"{where}: datatype must be one of {', '.join(DATATYPES)}, "
                    f"not {tensor.get('datatype')!r}."
                }
            )
        shape = tensor.get("shape", [])
        if not isinstance(shape, list) or not all(
            isinstance(dim, int) and not isinstance(dim, bool) and dim >= -1 for dim in shape
        ):
            raise ValidationError({"signature": f"{where}: shape must be a list of integers (-1 for any size)."})
        cleaned.append({"name": tensor["name"], "datatype": tensor["datatype"], "shape": shape})
    return cleaned


def clean_signature(value) -> dict:
    if value in (None, {}):
        return {}
    if not isinstance(value, dict) or not set(value) <= {"inputs", "outputs"}:
        raise ValidationError({"signature": "Give an object with 'inputs' and 'outputs' lists."})
    return {side: _clean_tensors(value.get(side, []), side) for side in ("inputs", "outputs")}


def clean_tags(value) -> list[str]:
    if isinstance(value, str):
        value = [tag.strip() for tag in value.split(",") if tag.strip()]
    if not isinstance(value, list):
        raise ValidationError({"tags": "Give a list of tags."})
    for tag in value:
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            raise ValidationError({"tags": f"'{tag}' is not a valid tag (letters, digits, '.', '_', ':', '/', '-')."})
    return list(dict.fromkeys(value))


def clean_commit(value: str) -> str:
    value = (value or "").strip().lower()
    if value and not COMMIT_RE.match(value):
        raise ValidationError({"source_commit": "Give a hexadecimal git commit id (7 to 64 characters)."})
    return value


def clean_image_reference(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationError({"image_reference": "A prebuilt image needs its reference (registry/repo:tag)."})
    if len(value) > 500 or not IMAGE_RE.match(value):
        raise ValidationError({"image_reference": f"'{value}' is not a valid image reference."})
    return value
