"""How sizes read, everywhere one is shown: pages, log lines, error messages. Binary units with their
own names (1 MiB = 1,048,576 bytes), so a page and a log line never disagree about one image."""


def human_size(size: int | float) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
