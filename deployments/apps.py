from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Builds and deployments"

    def ready(self) -> None:
        from deployments.services.builds import start_build_for_new_version
        from registry.services import version_created

        version_created.connect(start_build_for_new_version, dispatch_uid="deployments.auto_build")
