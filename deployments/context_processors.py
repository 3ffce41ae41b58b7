from accounts.permissions import Actor
from deployments.selectors.promotions import inbox


def approvals(request):
    """The number of promotion requests waiting for the user, shown in the navigation."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Evaluated lazily: pages that never render the navigation (API, partials) pay nothing.
    return {"nav_inbox_count": lambda: len(inbox(Actor(user=user)))}
