"""Django's Redis cache, failing open: the cache holds only the worker API's throttle counters, which may be lost,
so a Redis that is down or hung reads as a miss and drops writes (logged) instead of failing a worker's request."""
import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)
# After a failure the cache is skipped for this long (by every thread of the process): one request waits on the
# timeout, not each one.
DOWN_BACKOFF_S = 10.0


class ReusedClientRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client makes a new redis.Redis object for every call (about a tenth of a millisecond of
    CPU, most of a throttle check); redis.Redis is thread-safe, so one per connection pool is enough."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client

    def count_hit(self, key, timeout):
        pipeline = self.get_client(key, write=True).pipeline(transaction=False)
        pipeline.incr(key)
        pipeline.expire(key, timeout, nx=True)
        return pipeline.execute()[0]


class FailOpenRedisCache(RedisCache):
    down_until = 0.0  # class-wide: Django makes one cache object per thread

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient

    def _call(self, method, default, *args):
        if time.monotonic() < FailOpenRedisCache.down_until:
            return default
        try:
            if method == "count_hit":
                key, timeout = args
                return self._cache.count_hit(self.make_and_validate_key(key), timeout)
            return getattr(super(), method)(*args)
        except (RedisConnectionError, RedisTimeoutError) as error:
            FailOpenRedisCache.down_until = time.monotonic() + DOWN_BACKOFF_S
            logger.warning("cache unreachable (%s: %s): throttle counters skipped for %g s", type(error).__name__,
                           error, DOWN_BACKOFF_S)
            return default

    def get(self, key, default=None, version=None):
        return self._call("get", default, key, default, version)

    def get_many(self, keys, version=None):
        return self._call("get_many", {}, keys, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set", None, key, value, timeout, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("add", False, key, value, timeout, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set_many", list(data), data, timeout, version)

    def delete(self, key, version=None):
        return self._call("delete", False, key, version)

    def count_hit(self, key, timeout):
        return self._call("count_hit", 0, key, timeout)


def count_hit(cache, key, timeout):
    """Add one to the counter `key`, which expires `timeout` seconds after its first hit; returns the new count.

    One round trip on Redis (INCR and EXPIRE NX in a pipeline); 0 when Redis is down (the fail-open cache).
    """
    counter = getattr(cache, "count_hit", None)  # FailOpenRedisCache's, also through django.core.cache.cache
    if counter is not None:
        return counter(key, timeout)
    cache.add(key, 0, timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout)
        return 1
