"""A variant: one kernel flavor plus boot parameters, spelled ``flavor+param=value+...``.

``regions+mem_region_sort=0`` boots the regions kernel with sorting off: the same
kernel as its own baseline, with the same statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UserError


@dataclass(frozen=True)
class Variant:
    flavor: str
    params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """``"regions+mem_region_sort=0+mem_region_size=16M"`` -> Variant("regions", (...))."""
        flavor, *params = spec.strip().split("+")
        if not flavor:
            raise UserError(f"variant {spec!r}: starts with a flavor name, e.g. regions+mem_region_sort=0")
        for p in params:
            if not p or any(c.isspace() for c in p):
                raise UserError(f"variant {spec!r}: boot parameters are joined with '+', "
                                "e.g. regions+mem_region_sort=0")
        return cls(flavor, tuple(params))

    @property
    def append(self) -> str:
        """The boot parameters as kernel command-line text."""
        return " ".join(self.params)

    def __str__(self) -> str:
        return "+".join((self.flavor, *self.params))


def parse_variants(specs: tuple[str, ...] | list[str], what: str = "--flavors") -> tuple[Variant, ...]:
    """Several variants; an empty list is an error naming the option."""
    variants = tuple(Variant.parse(s) for s in specs)
    if not variants:
        raise UserError(f"{what}: give at least one variant, e.g. vanilla,regions")
    return variants
