"""``python -m examples.signups.tables signup|welcome``: create a service's own tables in its schema.

Run after ``kafkaguard db upgrade`` (kafkaguard's tables), with the service's settings
(``KAFKAGUARD_CONFIG=examples/signups/<service>.toml`` and ``KAFKAGUARD_DATABASE_URL``). Safe to run again.
"""

from __future__ import annotations

import sys

from sqlalchemy import MetaData

from examples.signups.models import SignupBase, WelcomeBase
from kafkaguard import KafkaguardSettings, create_engine

METADATA: dict[str, MetaData] = {"signup": SignupBase.metadata, "welcome": WelcomeBase.metadata}


def create_tables(service: str, settings: KafkaguardSettings | None = None) -> list[str]:
    """Create ``service``'s tables in ``settings.db_schema`` (first on the engine's search_path); their names."""
    metadata = METADATA[service]
    engine = create_engine(settings or KafkaguardSettings())
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()
    return sorted(metadata.tables)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in METADATA:
        print(f"usage: python -m examples.signups.tables {'|'.join(METADATA)}", file=sys.stderr)
        return 2
    print(f"{argv[0]}: {', '.join(create_tables(argv[0]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
