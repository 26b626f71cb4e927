"""Database stores: queries over kafkaguard's tables, parameterised, no business decisions."""
