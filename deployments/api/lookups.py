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
