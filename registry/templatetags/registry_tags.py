from django import template
from django.utils import timezone

from registry.units import human_size

register = template.Library()


@register.filter
def get(mapping, key):
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def short_digest(value: str, length: int = 12) -> str:
    """`repo@sha256:abc…` or `sha256:abc…` → the first characters of the hex digest."""
    value = (value or "").rsplit("@", 1)[-1]
    return value.removeprefix("sha256:")[:length] if "sha256:" in value else ""


@register.filter
def size(value) -> str:
    """A size in bytes, as every page and log line writes it (registry.units)."""
    return "" if value in (None, "") else human_size(value)


@register.filter
def seconds(delta) -> str:
    """A duration as people say it: "4.2 s", "3 min 5 s"."""
    if delta is None:
        return ""
    total = delta.total_seconds()
    if total < 60:
        return f"{total:.1f} s"
    minutes, rest = divmod(int(total), 60)
    return f"{minutes} min {rest} s"


@register.filter
def metric(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


@register.filter
def ago(moment) -> str:
    """ "5 min ago": like naturaltime, but cheap enough for a page with a thousand cells."""
    if moment is None:
        return ""
    elapsed = int((timezone.now() - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if elapsed >= size:
            return f"{elapsed // size} {unit} ago"
    return "just now" if elapsed < 10 else f"{elapsed} s ago"
