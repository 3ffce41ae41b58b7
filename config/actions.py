"""Action URLs (deploy, approve, roll back, ...) take POST. Opened with GET (a reloaded page, a copied
link) they send the user to the object the action is about, saying so, rather than a bare 405 page."""

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect

GET_MESSAGE = "That address performs an action; use its button on this page."


def post_only(target: Callable[..., str]):
    """`target(**url_kwargs)`: the address of the object the action is about."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method == "POST":
                return view(request, *args, **kwargs)
            if request.method in ("GET", "HEAD"):
                messages.info(request, GET_MESSAGE)
                return redirect(target(*args, **kwargs))
            return HttpResponseNotAllowed(["POST"])

        return wrapper

    return decorator
