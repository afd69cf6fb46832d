"""The one exception type the pack raises for user-facing problems."""


class StyleAlignedError(ValueError):
    """A problem the user can fix; the message names the node, the input and what to do."""
