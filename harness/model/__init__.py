"""Pure reference model of what a Linux 6.12 x86_64 guest reports: zone layout and regions.

Nothing here reads files or runs programs: inputs are plain data (the firmware memory
map, the SRAT ranges, the configured zones, boot parameters) and outputs are pandas
DataFrames named and indexed like the kernel's own /proc files.
"""

from harness.errors import UserError


class ModelInputError(UserError):
    """An input of the reference model is invalid or asks for something not modelled."""


__all__ = ["ModelInputError"]
