//! Connecting to Redis and checking its health.
