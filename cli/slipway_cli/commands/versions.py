import json
from pathlib import Path

import click
import httpx

from slipway_cli import follow, resolve
from slipway_cli.app import App, command, deadline, timeout_option
from slipway_cli.errors import Usage
from slipway_cli.upload import MultipartFile, UploadProgress

# The framework a file's suffix implies. The server checks the pair, so a wrong guess is refused
# with its reason; tests keep this in step with the platform's own list (serving/contract.py).
FRAMEWORK_BY_SUFFIX = {
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".onnx": "onnx",
    ".py": "python",
}
FRAMEWORKS = ("sklearn", "onnx", "python", "custom")


def json_option(value: str | None, option: str, kind: type) -> str | None:
    """A JSON document given inline or as @file, checked here so a typo fails before a long upload."""
    if value is None:
        return None
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {value[1:]}: {exc.strerror}", param_hint=option) from None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg} at character {exc.pos}", param_hint=option) from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"must be a JSON {'object' if kind is dict else 'list'}", param_hint=option)
    return json.dumps(parsed)


def framework_of(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix in FRAMEWORK_BY_SUFFIX:
        return FRAMEWORK_BY_SUFFIX[suffix]
    raise Usage(f"cannot tell the framework of {path.name} from its name: give --framework ({', '.join(FRAMEWORKS)})")


def register(cli: click.Group) -> None:
    @cli.group()
    def versions():
        """Model versions: upload one and build its image."""

    @command(versions, "push")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
    @click.option("--model", "model_spec", required=True, help="The model: name, team/name or id.")
    @click.option("--framework", type=click.Choice(FRAMEWORKS), help="Guessed from the file name when left out.")
    @click.option(
        "--requirements",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A requirements.txt for the image.",
    )
    @click.option("--metrics", help='JSON object, or @file: {"accuracy": 0.94}')
    @click.option("--signature", help="The inputs and outputs, as JSON or @file.")
    @click.option("--label", default="", help="A label unique in the model, e.g. a release name.")
    @click.option("--description", default="")
    @click.option("--source-url", default="", help="Where the training code lives.")
    @click.option("--source-commit", default="", help="The commit it was trained from.")
    @click.option("--wait", is_flag=True, help="Follow the build, streaming its log; exit 1 if it fails.")
    @timeout_option
    def versions_push(app: App, file: Path, model_spec: str, framework, requirements, metrics, signature, **rest):
        """Upload FILE as a new version of a model (with a progress bar), then build it."""
        fields = {
            "framework": framework_of(file, framework),
            "metrics": json_option(metrics, "--metrics", dict),
            "signature": json_option(signature, "--signature", dict),
            "requirements": requirements.read_text() if requirements else None,
            "label": rest["label"],
            "description": rest["description"],
            "source_url": rest["source_url"],
            "source_commit": rest["source_commit"],
        }
        api, out = app.api, app.out
        model = resolve.model(api, model_spec)
        form = MultipartFile({k: v for k, v in fields.items() if v}, "artifact", file)
        with UploadProgress(out, file.name, form.size) as progress:

            def body():
                progress.restart()
                return form.body(progress.advance)

            version = api.request(
                "POST",
                f"/models/{model['id']}/versions/",
                body=body,
                headers={"Content-Type": form.content_type, "Content-Length": str(form.length)},
                # The server hashes and inspects the artifact before it answers.
                timeout=httpx.Timeout(600.0, connect=10.0),
            )
        version_page = resolve.version_page(api, version)
        out.say(
            f"Uploaded {version['team']}/{version['model_name']} v{version['number']} "
            f"(version id {version['id']}, sha256 {version['artifact_sha256'][:12]})"
        )
        out.page(version_page)
        wait_until = deadline(rest["timeout"])
        if rest["wait"]:
            version = follow.inspection(api, out, version, deadline=wait_until)
        build = latest_build(api, version["id"])
        if build is None and rest["wait"]:
            build = api.post("/builds/", {"version": version["id"]})
        if build is not None:
            out.say(f"Build #{build['id']} {build['state']}")
            out.page(resolve.build_page(api, build["id"]))
        if rest["wait"] and build is not None:
            build = follow.build(api, out, build["id"], deadline=wait_until)
            out.say(f"Build #{build['id']} succeeded: {build['digest_reference']}")
        app.out.result(
            {
                "version": {**version, "page_url": version_page},
                "build": {**build, "page_url": resolve.build_page(api, build["id"])} if build else None,
            },
            human=lambda: None,
        )


def latest_build(api, version_id: int) -> dict | None:
    found = api.get("/builds/", {"version": version_id, "ordering": "-created_at"})["results"]
    return found[0] if found else None
