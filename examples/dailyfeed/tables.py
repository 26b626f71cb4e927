"""``python -m examples.dailyfeed.tables``: create the services' own tables (``DAILYFEED_*`` settings).

Run after ``kafkaguard db upgrade --schema content`` and ``--schema activity`` (kafkaguard's tables).
Safe to run again: existing tables are kept.
"""

from __future__ import annotations

from examples.dailyfeed.activity.models import Base as ActivityBase
from examples.dailyfeed.config import DailyfeedSettings
from examples.dailyfeed.content.models import Base as ContentBase
from kafkaguard import create_engine


def main() -> None:
    settings = DailyfeedSettings()
    for schema, base in ((settings.content_schema, ContentBase), (settings.activity_schema, ActivityBase)):
        engine = create_engine(url=settings.database_url, schema=schema)
        base.metadata.create_all(engine)
        engine.dispose()
        print(f"tables of schema {schema}: {', '.join(sorted(base.metadata.tables))}")


if __name__ == "__main__":
    main()
