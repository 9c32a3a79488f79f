"""Django's Redis cache, failing open: the cache holds only the worker API's throttle counters, which may be lost,
so a Redis that is down or hung reads as a miss and drops writes (logged) instead of failing a worker's request."""
import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)
# After a failure the cache is skipped for this long (by every thread of the process): one request waits on the
# timeout, not each one.
DOWN_BACKOFF_S = 10.0


class FailOpenRedisCache(RedisCache):
    down_until = 0.0  # class-wide: Django makes one cache object per thread

    def _call(self, method, default, *args):
        if time.monotonic() < FailOpenRedisCache.down_until:
            return default
        try:
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
