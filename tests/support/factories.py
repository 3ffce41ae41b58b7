import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Membership, Role, Team
from deployments.models import Build, BuildLogLine, BuildState, ContainerRegistry, Environment, EnvironmentGrant
from registry.models import Framework, ModelVersion, RegisteredModel


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ["slug"]

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.DEVELOPER


class ModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    task = "classification"
    created_by = factory.SubFactory(UserFactory)


class VersionFactory(factory.django.DjangoModelFactory):
    """A version row without a stored artifact, for list and permission tests."""

    class Meta:
        model = ModelVersion

    model = factory.SubFactory(ModelFactory)
    number = factory.Sequence(lambda n: n + 1)
    framework = Framework.SKLEARN
    artifact_name = "model.joblib"
    artifact_sha256 = "0" * 64
    artifact_size = 10
    metrics = factory.LazyFunction(lambda: {"accuracy": 0.9})
    created_by = factory.SubFactory(UserFactory)


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
    """A global environment unless given a team. A global one takes no team's models until it grants
    a role: `EnvironmentFactory(name="prod", grants={team: Role.ADMIN})`."""

    class Meta:
        model = Environment
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"env-{n}")
    position = factory.Sequence(lambda n: (n + 1) * 10)
    target = "docker"

    @factory.post_generation
    def grants(self, create, extracted, **kwargs):
        for team, role in (extracted or {}).items():
            grant(self, team, role=role)


def grant(environment, *teams, role=Role.ADMIN):
    """Let the teams act in a global environment, up to `role` (it takes no team's models otherwise)."""
    for team in teams:
        EnvironmentGrant.objects.update_or_create(environment=environment, team=team, defaults={"role": role})
    return environment


def succeeded_build(version, digest_char="a"):
    """A build as the runner leaves it after pushing: succeeded, with an image digest."""
    return BuildFactory(
        version=version,
        state=BuildState.SUCCEEDED,
        finished_at=timezone.now(),
        image_reference=f"127.0.0.1:5000/{version.model.team.slug}/{version.model.name}:v{version.number}-b1",
        image_digest="sha256:" + digest_char * 64,
    )
