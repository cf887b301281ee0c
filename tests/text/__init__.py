"""Tests of the text layer: text -> token edits, LSP positions, context limits."""
