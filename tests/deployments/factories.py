import factory
from django.utils import timezone

from deployments.models import Build, BuildLogLine, BuildState, ContainerRegistry, Environment
from tests.factories import VersionFactory


class RegistryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContainerRegistry
        django_get_or_create = ["team"]  # one registry per team, and one global

    team = None
    name = factory.Sequence(lambda n: f"registry-{n}")
    url = "127.0.0.1:5999"
    insecure = True


class BuildFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Build

    version = factory.SubFactory(VersionFactory)


def add_log_lines(build, count, text="line {n}"):
    BuildLogLine.objects.bulk_create(
        BuildLogLine(build=build, seq=n, text=text.format(n=n))
        for n in range(build.log_line_count + 1, build.log_line_count + count + 1)
    )
    Build.objects.filter(pk=build.pk).update(log_line_count=build.log_line_count + count)
    build.refresh_from_db()


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment

    name = factory.Sequence(lambda n: f"env-{n}")
    position = factory.Sequence(lambda n: (n + 1) * 10)
    target = "docker"


def succeeded_build(version, digest_char="a"):
    """A build as the runner leaves it after pushing: succeeded, with an image digest."""
    return BuildFactory(
        version=version,
        state=BuildState.SUCCEEDED,
        finished_at=timezone.now(),
        image_reference=f"127.0.0.1:5000/{version.model.team.slug}/{version.model.name}:v{version.number}-b1",
        image_digest="sha256:" + digest_char * 64,
    )
