"""Print this installation's id: the label on every object its targets create (`make run` records it,
and `make stop` removes the containers that carry it, and no other installation's)."""

from django.core.management.base import BaseCommand

from deployments.selectors.installation import installation_id


class Command(BaseCommand):
    help = "Print the installation id that labels this installation's containers and cluster objects."

    def handle(self, *args, **options):
        self.stdout.write(installation_id())
