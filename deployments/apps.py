from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Builds and deployments"

    def ready(self) -> None:
        from deployments.selectors.registries import check_image_reference
        from deployments.services.builds import start_build_for_new_version
        from registry.services import image_reference_checking, version_created

        version_created.connect(start_build_for_new_version, dispatch_uid="deployments.auto_build")
        image_reference_checking.connect(check_image_reference, dispatch_uid="deployments.image_reference")
