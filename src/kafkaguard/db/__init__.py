"""kafkaguard's tables (SQLAlchemy Core), migrations runner and database locks."""
