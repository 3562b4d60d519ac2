//! Postern's web console and REST API (askama pages under `/`, JSON under `/api/v1`), over the
//! same store as the engine. The console arrives with its own issue; this crate holds its place
//! in the workspace and the dependency rule: it depends on `postern-store`, never on the engine.
