"""What a request body names by id, found among what the caller may see; else a 400 naming the field
(an object of another team is reported exactly like one that does not exist)."""

from rest_framework.exceptions import ValidationError

from deployments.models import Environment
from deployments.selectors.environments import environment_list
from registry.models import ModelVersion, RegisteredModel
from registry.selectors import model_by_id, version_by_id


def version_named(request, pk) -> ModelVersion:
    version = version_by_id(user=request.user, pk=pk)
    if version is None:
        raise ValidationError({"version": "No such version in your teams."})
    return version


def model_named(request, pk) -> RegisteredModel:
    model = model_by_id(user=request.user, pk=pk)
    if model is None:
        raise ValidationError({"model": "No such model in your teams."})
    return model


def environment_named(request, pk) -> Environment:
    environment = environment_list(user=request.user).filter(pk=pk).first()
    if environment is None:
        raise ValidationError({"environment": "No such environment."})
    return environment


def environment_spec(request, spec: str, *, team=None) -> Environment:
    """An environment by id or by name, as the CLI finds one: of several of that name, the team's own
    wins over a shared one; a name still shared by several is a 400 asking for the id."""
    visible = environment_list(user=request.user)
    found = list(visible.filter(pk=int(spec)) if spec.isdigit() else visible.filter(name=spec)[:20])
    if len(found) > 1 and team is not None:
        found = [e for e in found if e.team_id == team.pk] or [e for e in found if e.team_id is None]
    if not found:
        raise ValidationError({"environment": f"No environment '{spec}' that you can see: give its id or name."})
    if len(found) > 1:
        ids = ", ".join(str(e.pk) for e in found)
        raise ValidationError({"environment": f"Several environments are named '{spec}' (ids {ids}): give the id."})
    return found[0]
