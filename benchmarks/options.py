"""Command-line pieces the benchmark scripts share."""


def parse_env(items: list[str], option: str = "--env") -> dict[str, str]:
    """``VAR=VALUE`` items (an option given several times) as a mapping; exit naming a bad one."""
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{option}: {item!r} is not VAR=VALUE")
        env[name] = value
    return env
