//! Backups: taking one while `serve` runs (`create`), the archive it is written as (`archive`),
//! restoring one into an empty data directory (`restore`), and the scheduled backups `serve`
//! runs (`schedule`).

pub mod archive;
pub mod create;
pub mod restore;
pub mod schedule;
