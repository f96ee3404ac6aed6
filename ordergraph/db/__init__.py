"""SQLAlchemy 2 (async, Core): tables, repositories, the unit of work, the read store."""
