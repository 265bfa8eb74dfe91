"""Trusted public keys for module signatures: the .pub files that
`vmoe-compile --generate-signing-key=NAME` writes, or raw 32-byte keys."""
import os

from ._errors import InvalidArgumentError

KEY_SIZE = 32
PUBLIC_KEY_TAG = "vmoe-ed25519-public-key"


def _parse_key_file(path):
    with open(path, "rb") as f:
        text = f.read(4097)
    body = text[:-1] if text.endswith(b"\n") else text
    prefix = PUBLIC_KEY_TAG.encode() + b" "
    digits = body[len(prefix):]
    try:
        key = bytes.fromhex(digits.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if not body.startswith(prefix) or len(digits) != 2 * KEY_SIZE or \
            len(key) != KEY_SIZE:
        raise InvalidArgumentError(
            f"'{os.fspath(path)}' is not a {PUBLIC_KEY_TAG} file (one line: "
            f"'{PUBLIC_KEY_TAG}' and 64 hex digits)")
    return key


def trusted_key_bytes(keys):
    """The keys back to back, as the runtime takes them. `keys`: one key or
    an iterable of keys; each a path (str or os.PathLike) to a .pub file or
    the 32 raw bytes of a public key."""
    if keys is None:
        return b""
    if isinstance(keys, (str, bytes, bytearray, os.PathLike)):
        keys = [keys]
    out = []
    for key in keys:
        if isinstance(key, (bytes, bytearray)):
            if len(key) != KEY_SIZE:
                raise InvalidArgumentError(
                    f"a raw trusted key is {KEY_SIZE} bytes, not {len(key)}")
            out.append(bytes(key))
        elif isinstance(key, (str, os.PathLike)):
            out.append(_parse_key_file(key))
        else:
            raise TypeError("a trusted key is a path to a .pub file or "
                            f"{KEY_SIZE} bytes, not {type(key).__name__}")
    return b"".join(out)
