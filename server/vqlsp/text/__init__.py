"""Document text -> token edits (DESIGN.md, "Text -> token edits"). Never imports torch."""
