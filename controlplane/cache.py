"""Django's Redis cache backend, keeping one redis-py client per connection pool.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` object on every cache call; its
constructor (response callbacks, retry and connection settings) costs more CPU than the round trip to Redis
on loopback, and the SDK config poll makes three cache calls. A `redis.Redis` is safe to share between
threads (each command takes a connection from the pool), and Django gives every thread its own backend
instance anyway, so the client is built once per pool instead. `incr` is one round trip (a server-side
script) instead of EXISTS then INCRBY, and atomic: a key that expires between the two can no longer be
recreated without its timeout. Nothing else changes: same keys, same serializer, same pools.
"""

import hashlib

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis.exceptions import NoScriptError


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def incr(self, key, delta):
        client = self.get_client(key, write=True)
        value = client.eval(_INCR_EXISTING, 1, key, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value


# Like Django's incr: ValueError (nil) for a missing key, never create it (it would have no timeout).
_INCR_EXISTING = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('incrby', KEYS[1], ARGV[1]) end"

# GET each key but the last, INCR the last (the window's first request gives it its time to live).
# GET of a missing key is false in Lua, a nil in the reply, so the list keeps its length.
_GET_MANY_AND_COUNT = """
local n = redis.call('incr', KEYS[#KEYS])
if n == 1 then redis.call('expire', KEYS[#KEYS], ARGV[1]) end
local values = {}
for i = 1, #KEYS - 1 do values[i] = redis.call('get', KEYS[i]) end
values[#KEYS] = n
return values
"""
_GET_MANY_AND_COUNT_SHA = hashlib.sha1(_GET_MANY_AND_COUNT.encode()).hexdigest()


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

    def get_many_and_count(self, keys: list[str], counter_key: str, timeout: int) -> tuple[list, int]:
        """The values at `keys` (None where missing) and the counter at `counter_key` plus one (created with
        `timeout` seconds to live), in one command: the SDK config poll's reads and its rate-limit count.
        The counter is a plain integer, as `incr` and `add` keep it."""
        client = self._cache.get_client(write=True)
        names = [self.make_and_validate_key(key) for key in [*keys, counter_key]]
        try:  # the script by its hash (cheaper than sending it each time); loaded on first use
            *values, count = client.evalsha(_GET_MANY_AND_COUNT_SHA, len(names), *names, timeout)
        except NoScriptError:
            *values, count = client.eval(_GET_MANY_AND_COUNT, len(names), *names, timeout)
        loads = self._cache._serializer.loads
        return [None if value is None else loads(value) for value in values], count
