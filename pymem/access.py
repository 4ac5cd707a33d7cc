"""The access path of an AddressSpace (read, write, loads and stores): in progress."""


class AccessMixin:
    """Access methods mixed into AddressSpace."""
