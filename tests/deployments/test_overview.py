from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.models import Drift, PromotionRequest, Rollout, RolloutState
from tests.support.factories import EnvironmentFactory, ModelFactory, RegistryFactory, VersionFactory, succeeded_build


def release(model, environment, number, digest="a", **fields):
    version = model.versions.filter(number=number).first() or VersionFactory(model=model, number=number)
    build = version.builds.first() or succeeded_build(version, digest)
    return Rollout.objects.create(
        environment=environment,
        model=model,
        version=version,
        build=build,
        image=build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=timezone.now(),
        **fields,
    )


def add_models(team, environments, count, start):
    for n in range(start, start + count):
        model = ModelFactory(team=team, name=f"m-{n}")
        for environment in environments:
            release(model, environment, 1)


def test_the_overview_shows_each_model_in_each_environment(client, viewer, team, model):
    RegistryFactory()
    dev, prod = (
        EnvironmentFactory(name="dev", position=10, grants={team: "developer"}),
        EnvironmentFactory(name="prod", position=30, protected=True, grants={team: "developer"}),
    )
    current = release(model, dev, 3, drift=Drift.DRIFTED, drift_detail="Running something else")
    version = VersionFactory(model=model, number=4)
    build = succeeded_build(version, "b")
    PromotionRequest.objects.create(
        environment=prod,
        model=model,
        version=version,
        build=build,
        image=build.digest_reference,
        requested_by=viewer,
        reason="r",
        expires_at=timezone.now(),
    )
    client.force_login(viewer)
    page = client.get("/").content.decode()
    assert f'href="/rollouts/{current.pk}/" class="cell-version">v3' in page
    assert "drifted" in page and "v4 awaits approval" in page
    assert '<span class="num-big">1</span><span>awaiting approval</span>' in page


def test_the_overview_filters_by_team(client, viewer, team, other_team, model):
    ModelFactory(team=other_team, name="elsewhere")
    viewer.memberships.create(team=other_team, role="viewer")
    EnvironmentFactory(name="shared-prod", grants={team: "developer"})
    EnvironmentFactory(name="others-prod", grants={other_team: "developer"})
    client.force_login(viewer)
    everything = client.get("/").content.decode()
    assert "elsewhere" in everything and "others-prod" in everything
    filtered = client.get("/?team=vision").content.decode()
    assert "elsewhere" not in filtered and "iris" in filtered
    assert "shared-prod" in filtered and "others-prod" not in filtered


def test_the_overview_query_count_does_not_grow(client, viewer, team):
    RegistryFactory()
    environments = [EnvironmentFactory(name=f"e{n}", position=n) for n in range(3)]
    add_models(team, environments, 2, 0)
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as few:
        client.get("/")
    add_models(team, environments, 12, 2)
    with CaptureQueriesContext(connection) as many:
        client.get("/")
    assert len(many) == len(few)


def test_an_empty_overview_says_what_to_do(client, teammate):
    client.force_login(teammate)
    assert "Register a model" in client.get("/").content.decode()


def test_two_versions_compare_metrics_requirements_and_packages(client, viewer, model):
    RegistryFactory()
    old = VersionFactory(model=model, number=1, metrics={"auc": 0.81}, requirements=["numpy==1.26.4"])
    new = VersionFactory(model=model, number=2, metrics={"auc": 0.86, "f1": 0.7}, requirements=["numpy==2.4.6"])
    for version, numpy in ((old, "1.26.4"), (new, "2.4.6")):
        build = succeeded_build(version, "e")
        build.bill_of_materials = [{"name": "numpy", "version": numpy, "sha256": "x", "filename": "n.whl"}]
        build.save()
    client.force_login(viewer)
    page = client.get("/models/vision/iris/compare/?a=1&b=2").content.decode()
    assert "v1 → v2" in page
    assert "→ 0.86" in page and ">f1<" in page
    assert "numpy==2.4.6" in page and "→ 2.4.6" in page
    bad = client.get("/models/vision/iris/compare/?a=1&b=9").content.decode()
    assert "Choose two versions of this model." in bad
