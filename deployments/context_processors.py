def approvals(request):
    """The number of promotion requests waiting for the user, shown in the navigation."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def count() -> int:
        from accounts.permissions import Actor
        from deployments.services.promotions import inbox

        return len(inbox(Actor(user=user)))

    return {"nav_inbox_count": count}
