import Protocol
import Redis

/// The Lua scripts behind every status change of a job. Keys and arguments are documented per script.
enum Scripts {
    /// Appends an event to a job's event stream: `append_event(key, i)` takes the stream's approximate maximum
    /// length, TTL seconds, event type and JSON payload from `ARGV[i]…ARGV[i + 3]` (see `JobEventWrite`).
    static let appendEvent = """
    local function append_event(key, at)
      redis.call('XADD', key, 'MAXLEN', '~', ARGV[at], '*', '\(RedisKeys.JobEventField.type)', ARGV[at + 2], '\(RedisKeys.JobEventField.data)', ARGV[at + 3])
      redis.call('EXPIRE', key, ARGV[at + 1])
    end
    """

    /// Records a job's webhook deliveries, due at once: `record_deliveries(job, due, key_at, at)` reads the due
    /// time (unix ms), the records' TTL and their count from `ARGV[at]…ARGV[at + 2]`, then seven arguments per
    /// delivery (id, message id, job id, url, key id or '', registered '1'|'0', body), and writes each to the hash
    /// `KEYS[key_at + i - 1]` and the sorted set `due` (see `ResultStore.webhookArguments`).
    static let recordDeliveries = """
    local function record_deliveries(job, due, key_at, at)
      local count = tonumber(ARGV[at + 2] or '0')
      local ids = {}
      for i = 1, count do
        local b = at + 2 + (i - 1) * 7
        local key = KEYS[key_at + i - 1]
        redis.call('HSET', key, 'id', ARGV[b + 1], 'message_id', ARGV[b + 2], 'job_id', ARGV[b + 3],
          'url', ARGV[b + 4], 'key_id', ARGV[b + 5], 'registered', ARGV[b + 6], 'body', ARGV[b + 7],
          'state', 'pending', 'attempts', '0', 'log', '', 'next_at', ARGV[at])
        redis.call('EXPIRE', key, ARGV[at + 1])
        redis.call('ZADD', due, ARGV[at], ARGV[b + 1])
        ids[#ids + 1] = ARGV[b + 1]
      end
      if count > 0 then redis.call('HSET', job, 'webhooks', table.concat(ids, ' ')) end
    end
    """

    /// KEYS: job hash, lease, optionally the job's event stream, then the due webhooks (sorted set) and one hash
    /// per expiry delivery.
    /// ARGV: worker id, lease ms, now, notify channel prefix, job id, number of event streams (0|1), then the
    /// `started` event (`append_event`) when there is one, then the deliveries of the job's expiry
    /// (`record_deliveries`).
    /// Returns `{"run", runs}`, `{"final", status}`, `{"leased", ms left}` or `{"unknown", 0}`.
    /// A queued job past its `deadline` ends `expired` here, before any provider call, with its webhooks; the
    /// `started` event is appended only when this call claims the job.
    static let start = RedisScript("""
    \(appendEvent)
    \(recordDeliveries)
    local events = tonumber(ARGV[6])
    local status = redis.call('HGET', KEYS[1], 'status')
    if not status then return {'unknown', 0} end
    if status == 'queued' then
      local deadline = redis.call('HGET', KEYS[1], 'deadline')
      if deadline and tonumber(ARGV[3]) > tonumber(deadline) then
        redis.call('HSET', KEYS[1], 'status', 'expired', 'completed_at', ARGV[3])
        record_deliveries(KEYS[1], KEYS[3 + events], 4 + events, 7 + events * 4)
        local waiting = redis.call('HGET', KEYS[1], 'reply_to')
        if waiting and ARGV[4] then redis.call('PUBLISH', ARGV[4] .. waiting, ARGV[5]) end
        return {'final', 'expired'}
      end
    end
    if status ~= 'queued' and status ~= 'in_progress' then return {'final', status} end
    local holder = redis.call('GET', KEYS[2])
    if holder and holder ~= ARGV[1] then
      local left = redis.call('PTTL', KEYS[2])
      if left < 0 then left = 1000 end
      return {'leased', left}
    end
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
    local runs = redis.call('HINCRBY', KEYS[1], 'runs', 1)
    redis.call('HSET', KEYS[1], 'status', 'in_progress', 'started_at', ARGV[3])
    if events == 1 then append_event(KEYS[3], 7) end
    return {'run', runs}
    """)

    /// KEYS: lease. ARGV: worker id, lease ms. Returns 1 when renewed, 0 when the lease belongs to another worker,
    /// -1 when there is none (it expired, or the job's finish deleted it).
    static let renew: RedisScript = """
    local owner = redis.call('GET', KEYS[1])
    if owner == ARGV[1] then
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
      return 1
    end
    if owner then return 0 end
    return -1
    """

    /// KEYS: job hash, lease, due webhooks (sorted set), then one hash per webhook delivery, then optionally the
    /// job's event stream.
    /// ARGV: worker id, ttl seconds, now, notify channel prefix, job id, status (`completed`|`failed`),
    /// result or error JSON, usage JSON or '', attempt log JSON, attempts, provider, model,
    /// deliveries due at (unix ms), delivery ttl seconds, number of deliveries, then per delivery: id, message id,
    /// job id, url, key id or '', registered ('1'|'0'), body; then the final event (`append_event`).
    /// Returns 1 when this call ended the job, 0 when it had already ended, -1 when the record is gone.
    /// The waiting ingress replica (`reply_to`) is notified with the finished record (`JobNotification`).
    /// The deliveries and the final event are recorded only by the call that ends the job, in the same step, so a
    /// crash between finishing and delivering cannot lose them, and a rerun cannot repeat them.
    static let finish = RedisScript("""
    \(appendEvent)
    \(recordDeliveries)
    local status = redis.call('HGET', KEYS[1], 'status')
    if not status then return -1 end
    if status ~= 'queued' and status ~= 'in_progress' then return 0 end
    local field = 'result'
    if ARGV[6] == 'failed' then field = 'error' end
    redis.call('HSET', KEYS[1], 'status', ARGV[6], field, ARGV[7], 'completed_at', ARGV[3],
      'attempt_log', ARGV[9], 'attempts', ARGV[10], 'provider', ARGV[11], 'model', ARGV[12])
    if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'usage', ARGV[8]) end
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
    local deliveries = tonumber(ARGV[15] or '0')
    if KEYS[4 + deliveries] then append_event(KEYS[4 + deliveries], 16 + deliveries * 7) end
    record_deliveries(KEYS[1], KEYS[3], 4, 13)
    local reply = redis.call('HGET', KEYS[1], 'reply_to')
    if reply then
      -- The notification carries the finished record (see `JobNotification`), so the waiter needs no read.
      local fields = redis.call('HGETALL', KEYS[1])
      local parts = {ARGV[5]}
      for i = 1, #fields, 2 do
        if fields[i] ~= 'request' and fields[i] ~= 'reply_to' and fields[i] ~= 'owner' then
          parts[#parts + 1] = fields[i] .. ' ' .. #fields[i + 1] .. ' ' .. fields[i + 1]
        end
      end
      redis.call('PUBLISH', ARGV[4] .. reply, table.concat(parts, '\\n'))
    end
    return 1
    """)
}
