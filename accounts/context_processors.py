from accounts.models import Membership, Role


def navigation(request):
    """What the navigation shows: only links the user may follow."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def manages_a_team() -> bool:
        return user.is_superuser or Membership.objects.filter(user=user, role=Role.ADMIN).exists()

    # Evaluated lazily: pages that never render the navigation (API, partials) pay nothing.
    return {"nav_manages_a_team": manages_a_team}
