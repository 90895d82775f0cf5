//! gridwatch-sim: a deterministic grid simulator (see README.md).
