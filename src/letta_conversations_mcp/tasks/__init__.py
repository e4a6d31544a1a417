"""Long turns as MCP tasks (the ``io.modelcontextprotocol/tasks`` extension, 2026-07-28 requests).

``records`` is the task data and its wire shapes (pure), ``store`` keeps the records (as the
coordinator's expiring values: memory, or Valkey), ``extension`` is the SDK extension: it turns a declaring client's
``send_message``, ``wait_for_reply`` or ``respond_to_approval`` call into a task and serves
``tasks/get``, ``tasks/update`` and ``tasks/cancel``.
"""

from .extension import TASKS, TasksExtension

__all__ = ["TASKS", "TasksExtension"]
