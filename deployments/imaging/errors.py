"""How an image build can fail, as the build runner sorts it: retry, fail with a reason, or stop."""


class ImageError(Exception):
    """A failure a user can act on; the message is the one-sentence reason shown everywhere."""


class BuildContextError(ImageError):
    """The build context could not be prepared (the artifact, its requirements, the spec)."""


class TransientError(Exception):
    """The engine or the registry did not answer, or answered with a server error: retry with backoff."""


class Cancelled(Exception):
    """The build was asked to stop (by a user, or by its time limit); the message says which."""
