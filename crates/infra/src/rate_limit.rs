//! Rate limiting: in-process GCRA or Redis (atomic Lua script on the server clock).
