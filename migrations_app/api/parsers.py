"""Request bodies. The API speaks JSON (settings: DEFAULT_PARSER_CLASSES); a dataset's file may also come as a
multipart upload. Form bodies are not read: a form cannot carry a plan's lists of steps and rules, and a body
that is not a form at all read as an empty one, so a bad request "succeeded" as a no-op."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import MultiPartParser


class StrictMultiPartParser(MultiPartParser):
    """A multipart body naming no field (a part without a Content-Disposition name, say) is a 400, not an
    empty form."""

    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        if not result.data and not result.files:
            raise ParseError("the multipart body names no field")
        return result
