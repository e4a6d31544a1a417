"""The Lua scripts the Valkey coordinator runs (each one atomic on the server); keys as in ``valkey``."""

# The head check shared by both scripts. KEYS[1]: queue. ARGV[1]: member, ARGV[2]: lease key prefix.
# Drops heads whose lease expired; leaves how many tickets are ahead of ARGV[1] (0: it holds the
# slot) in `ahead`, or -1 when the ticket is gone (the store restarted).
HEAD = """
local ahead = -1
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not head then break end
  if head == ARGV[1] then ahead = 0 break end
  if redis.call('EXISTS', ARGV[2] .. head) == 1 then
    ahead = redis.call('ZRANK', KEYS[1], ARGV[1]) or -1
    break
  end
  redis.call('ZREM', KEYS[1], head)
end
"""

# KEYS: queue, seq, live. ARGV: member, lease key prefix, lease ms, ttl s. Takes a ticket (the
# fencing token) at the end of the queue; returns {ticket, tickets ahead}.
ENQUEUE = (
    """
local n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[1], n, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
"""
    + HEAD
    + "return {n, ahead}"
)

# KEYS: queue. ARGV: member, lease key prefix. Returns the tickets ahead, -1 if the ticket is gone.
CHECK = HEAD + "return ahead"

# KEYS: sent, record, active. ARGV: turn id, ttl s, then the record's fields and values. Registers
# a send unless the same text was sent before: then returns that turn's id (the caller applies the
# re-send rule to it).
CLAIM = """
local earlier = redis.call('GET', KEYS[1])
if earlier then return earlier end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return false
"""

# KEYS: queue, lease, channel. ARGV: member, the 'released' event. Leaves the queue; wakes the other
# processes only when someone is still waiting.
RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
if redis.call('ZCARD', KEYS[1]) > 0 then redis.call('PUBLISH', KEYS[3], ARGV[2]) end
return 0
"""

# KEYS: record. Marks it delivered if it still exists.
DELIVERED = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'delivered', '1') end
return 0
"""

# KEYS: record, owner's process key. ARGV: dead owner, new owner.
ADOPT = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
return 1
"""

# KEYS: lock. ARGV: token.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
