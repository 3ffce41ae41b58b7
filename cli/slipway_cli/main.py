"""`slipway`: the root command, its help (with the exit codes) and the subcommands."""

import click

from slipway_cli import __version__
from slipway_cli.commands import access, builds, environments, models, promotions, rollouts, versions
from slipway_cli.errors import EXIT_CODES_HELP


@click.group(
    epilog=EXIT_CODES_HELP
    + "\n\n\b\nConfiguration: SLIPWAY_URL and SLIPWAY_TOKEN, or `slipway login`.\n"
    + "SLIPWAY_RETRIES (4) and SLIPWAY_RETRY_BACKOFF (1 s, doubling) tune retries of transient errors.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="slipway")
def cli():
    """Register, build, deploy and promote models on Slipway, from a terminal or a CI job."""


for module in (access, models, versions, builds, rollouts, promotions, environments):
    module.register(cli)


def main() -> None:
    cli(prog_name="slipway")
