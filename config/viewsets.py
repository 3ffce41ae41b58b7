"""What the API's viewsets share. Apart from config.api, which DRF's settings import (this imports DRF's views)."""

from rest_framework import viewsets


class FiltersOnListOnly(viewsets.GenericViewSet):
    """Filters, search and ordering narrow the list; an object asked for by its id (and its actions) is
    found by its id alone. Building the filter set costs a fair part of a short request."""

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)
