from django import template

register = template.Library()


@register.filter
def get(mapping, key):
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def short_digest(value: str, length: int = 12) -> str:
    value = value or ""
    return value.split(":", 1)[-1][:length]


@register.filter
def metric(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)
