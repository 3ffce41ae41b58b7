import factory
from django.contrib.auth import get_user_model

from accounts.models import Membership, Role, Team
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
