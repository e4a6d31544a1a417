# The README's two commands (its first ```bash block), in the order it shows them.
# .ci/run sources this file and runs them from here; tests/test_readme_commands.py fails when
# README.md and this file disagree, so neither can change alone.
DEMO_COMMAND='uv run letta-conversations-mcp demo'
TEST_COMMAND='uv run pytest'
