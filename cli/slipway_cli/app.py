"""What every command shares: `--json`, the output, and an API client made only when needed
(so `--help` and usage errors work without a server or a token)."""

import functools

import click

from slipway_cli import config
from slipway_cli.client import Api
from slipway_cli.follow import Deadline
from slipway_cli.output import Output


class App:
    def __init__(self, *, as_json: bool):
        self.out = Output(as_json=as_json)
        self._api: Api | None = None

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = Api(config.load(), say=self.out.note)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


def command(group: click.Group, name: str, **settings):
    """A subcommand of `group` with `--json`, called as fn(app, **options)."""

    def wrap(fn):
        @group.command(name, **settings)
        @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
        @functools.wraps(fn)
        def run(as_json: bool, **options):
            app = App(as_json=as_json)
            try:
                return fn(app, **options)
            finally:
                app.close()

        return run

    return wrap


def timeout_option(fn):
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        metavar="SECONDS",
        help="With --wait: give up after this long (exit code 3).",
    )(fn)


def deadline(timeout: float | None) -> Deadline:
    return Deadline(timeout)
