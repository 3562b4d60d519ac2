//! The time greylisting, the blocklist cache and the rate limits go by: the appliance's one
//! [`Clock`] (`postern_store::clock`), the system's in production, a simulated one in tests, so
//! that "retry after five minutes" and "the answer's TTL ran out" are tested without waiting.

pub use postern_store::clock::Clock;
