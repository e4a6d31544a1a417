"""letta-conversations-mcp: Letta conversations as MCP tools and resources."""

__version__ = "0.1.0"
