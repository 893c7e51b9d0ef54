"""The embedded broker: kombu's file-system transport, made safe for a worker that polls while a producer
writes.

kombu writes each message file in place, so a worker listing the folder can take a file that is still being
written, read half a message and die on the JSON ("Unrecoverable error"). Here a message is written under a
name the worker ignores and then renamed into place, which is atomic.
"""

import os
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

SCHEME = "cutoverfs"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        # The worker only takes files named "<stamp>.<queue>.msg"; this one ends in .tmp until renamed.
        aside = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(aside, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(aside, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault(SCHEME, "controlplane.broker:Transport")
