"""GET /api/v1/can-i/?action=…&object=kind:id[&environment=id][&user=name]: may U do A on O, and why."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import Action, Actor, decide, restrict, team_of, visible_teams
from deployments import policy
from deployments.api.lookups import environment_spec
from deployments.models import BuildState, PromotionRequest
from registry.models import ModelVersion
from registry.selectors import model_by_id, version_by_id

OBJECTS = {
    "team": lambda user, pk: (
        visible_teams(user).filter(slug=pk).first()
        or visible_teams(user).filter(pk=int(pk) if pk.isdigit() else 0).first()
    ),
    "model": lambda user, pk: model_by_id(user=user, pk=pk),
    "version": lambda user, pk: version_by_id(user=user, pk=pk),
    "promotion": lambda user, pk: (
        restrict(PromotionRequest.objects.select_related("environment", "model__team", "requested_by"), user)
        .filter(pk=pk)
        .first()
    ),
}


class CanIView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("action", str, required=True, description=", ".join(a.value for a in Action)),
            OpenApiParameter(
                "object", str, required=True, description="team:<slug>, model:<id>, version:<id> or promotion:<id>"
            ),
            OpenApiParameter("environment", str, description="For deploy: the environment's id or name."),
            OpenApiParameter("user", str, description="Ask about someone else (admins only)."),
        ],
        responses={200: dict},
    )
    def get(self, request):
        params = request.query_params
        try:
            action = Action(params.get("action", ""))
        except ValueError:
            raise ValidationError({"action": f"Choose one of {', '.join(a.value for a in Action)}."}) from None
        kind, _, pk = params.get("object", "").partition(":")
        if kind not in OBJECTS or not pk:
            raise ValidationError({"object": "Give kind:id, with kind one of team, model, version, promotion."})
        obj = OBJECTS[kind](request.user, pk if kind == "team" else (int(pk) if pk.isdigit() else 0))
        if obj is None:
            raise NotFound(f"No {kind} {pk} in your teams.")
        subject = request.user
        if params.get("user") and params["user"] != request.user.get_username():
            if not decide(Actor.from_request(request), Action.MANAGE_TEAM, obj):
                raise PermissionDenied("Only admins of the object's team ask about other people.")
            subject = get_user_model().objects.filter(username=params["user"]).first()
            if subject is None:
                raise NotFound(f"No user {params['user']}.")
        actor = Actor(user=subject, token=request.auth if subject == request.user else None)
        environment = None
        if params.get("environment"):
            environment = environment_spec(request, params["environment"], team=team_of(obj))
        allowed, reason = self.decide(actor, action, obj, environment)
        return Response(
            {
                "user": subject.get_username(),
                "action": action.value,
                "object": f"{kind}:{pk}",
                "allowed": allowed,
                "reason": reason,
            }
        )

    def decide(self, actor, action, obj, environment):
        if action == Action.APPROVE and isinstance(obj, PromotionRequest):
            verdict = policy.approver_verdict(actor, obj)
            image = policy.vulnerability_verdict(obj.environment, obj.build)
            if verdict and not image:
                return False, image.reason
            return verdict.allowed, verdict.reason
        if action == Action.CANCEL_PROMOTION and isinstance(obj, PromotionRequest):
            verdict = policy.cancel_verdict(actor, obj)
            return verdict.allowed, verdict.reason
        if environment is None and isinstance(obj, PromotionRequest):
            environment = obj.environment
        decision = decide(actor, action, obj, environment=environment)
        if not decision or environment is None or action not in (Action.DEPLOY, Action.REQUEST_PROMOTION):
            return decision.allowed, decision.reason
        if action == Action.DEPLOY:
            verdict = policy.direct_deploy_verdict(environment)  # protected or frozen: not directly
            if not verdict:
                return False, verdict.reason
        if isinstance(obj, ModelVersion):
            build = (
                obj.builds.filter(state=BuildState.SUCCEEDED).exclude(image_digest="").order_by("-finished_at").first()
            )
            image = policy.vulnerability_verdict(environment, build) if build else None
            if image is not None and not image:
                return False, image.reason
        return True, decision.reason
