import factory

from deployments.models import Build, BuildLogLine, ContainerRegistry
from tests.factories import VersionFactory


class RegistryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContainerRegistry

    name = factory.Sequence(lambda n: f"registry-{n}")
    url = "127.0.0.1:5999"
    insecure = True


class BuildFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Build

    version = factory.SubFactory(VersionFactory)


def add_log_lines(build, count, text="line {n}"):
    BuildLogLine.objects.bulk_create(
        BuildLogLine(build=build, seq=n, text=text.format(n=n)) for n in range(build.log_line_count + 1,
                                                                             build.log_line_count + count + 1)
    )
    Build.objects.filter(pk=build.pk).update(log_line_count=build.log_line_count + count)
    build.refresh_from_db()
