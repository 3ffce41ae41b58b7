"""Artifact uploads: counted and hashed while they stream in, refused as soon as they are too big."""

import hashlib

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from config.api import PayloadTooLarge
from registry.units import human_size

# Multipart framing and the other form fields ride along with the file.
FORM_OVERHEAD = 1024 * 1024


class UploadTooLarge(PayloadTooLarge):
    def __init__(self, limit: int):
        super().__init__(f"The artifact is larger than the limit of {human_size(limit)}.")


class HashingUploadHandler(TemporaryFileUploadHandler):
    """Writes each uploaded file to a temporary file, with its SHA-256 and size computed on the way.

    Nothing reaches the artifact storage from here: the service stores the file only after every
    check passed, so a refused upload leaves nothing behind (the temporary file is deleted with
    the request).
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        limit = settings.MAX_ARTIFACT_SIZE
        if content_length and content_length > limit + FORM_OVERHEAD:
            raise UploadTooLarge(limit)
        return None

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self._sha256 = hashlib.sha256()
        self._received = 0

    def receive_data_chunk(self, raw_data, start):
        self._received += len(raw_data)
        if self._received > settings.MAX_ARTIFACT_SIZE:
            self.file.close()
            raise UploadTooLarge(settings.MAX_ARTIFACT_SIZE)
        self._sha256.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        uploaded = super().file_complete(file_size)
        uploaded.sha256 = self._sha256.hexdigest()
        return uploaded
