"""The real URLs plus one API view that crashes: how a test reaches handler500 without breaking the product."""

from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny

from config import urls as real


class Crash(RuntimeError):
    pass


@api_view(["GET"])
@permission_classes([AllowAny])
def crash(request):
    raise Crash("an unexpected failure inside an API view")


urlpatterns = [path("api/v1/test-crash/", crash), *real.urlpatterns]
handler500 = real.handler500
handler404 = real.handler404
