from accounts.permissions import manages_any_team


def navigation(request):
    """What the navigation shows: only links the user may follow."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    # Evaluated lazily: pages that never render the navigation (API, partials) pay nothing.
    return {"nav_manages_a_team": lambda: manages_any_team(user)}
