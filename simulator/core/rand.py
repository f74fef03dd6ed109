"""The seeded random source handed to every component.

Each component asks for its own named stream, so adding a component or drawing
one more number in one place never shifts the numbers another place sees.
"""

from __future__ import annotations

import random
import uuid


class RandomSource:
    """A root seed from which independent, named, reproducible streams derive."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def stream(self, name: str) -> random.Random:
        # String seeds are hashed with SHA-512 by random.Random: stable across
        # processes and independent of PYTHONHASHSEED.
        return random.Random(f"pushlab:{self.seed}:{name}")


def uuid_from(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (so apns-ids repeat with the seed)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
